using BlockDance.Kernels.Harness;
using BlockDance.Runtime.Cuda;
using BlockDance.Tests.Cli;
using Xunit;

namespace BlockDance.Tests.Ops;

/// <summary>
/// The op harness from the command line: <c>test-ops</c> (check mode) and <c>bench ops</c> (perf mode), selected by op
/// name and shape. Runs alone: the CPU device's thread count is process-wide.
/// </summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class OpHarnessCliTests
{
    [Fact]
    public void Test_ops_checks_an_op_on_every_backend_and_type_and_reports_cuda_as_skipped_without_a_gpu()
    {
        var (code, output, _) = CliTests.Run("test-ops", "--op", "layernorm_modulate", "--shape", "2,3,40,1e-5");
        Assert.Equal(0, code);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        foreach (string backend in new[] { "cpu      f32", "cuda-emu f32", "cuda-emu f16", "cuda-emu bf16" })
            Assert.Contains(lines, l => l.StartsWith("OK    layernorm_modulate", StringComparison.Ordinal) && l.Contains(backend, StringComparison.Ordinal));
        bool gpu = CudaDevice.IsGpuAvailable(out _);
        Assert.Equal(gpu ? 7 : 4, lines.Count(l => l.StartsWith("OK ", StringComparison.Ordinal)));
        if (!gpu)
            Assert.Equal(3, lines.Count(l => l.StartsWith("SKIP  cuda ", StringComparison.Ordinal)));
        Assert.Equal(gpu ? "7 passed, 0 failed, 0 skipped" : "4 passed, 0 failed, 3 skipped", lines[^1]);
    }

    [Fact]
    public void Test_ops_lists_every_case_and_rejects_a_shape_that_does_not_fit_the_op()
    {
        var (code, output, _) = CliTests.Run("test-ops", "--list");
        Assert.Equal(0, code);
        Assert.All(OpCases.All, op => Assert.Contains(op.Name, output, StringComparison.Ordinal));
        var (bad, _, err) = CliTests.Run("test-ops", "--op", "attention", "--shape", "2,3", "--device", "cpu");
        Assert.NotEqual(0, bad);
        Assert.Contains("attention", err, StringComparison.Ordinal);
        Assert.Contains("B,T,D,H", err, StringComparison.Ordinal);
        (bad, _, err) = CliTests.Run("test-ops", "--op", "no_such_op");
        Assert.NotEqual(0, bad);
        Assert.Contains("unknown op 'no_such_op'", err, StringComparison.Ordinal);
    }

    [Fact]
    public void Bench_ops_times_the_selected_op_at_the_given_shape()
    {
        var (code, output, _) = CliTests.Run("bench", "ops", "--device", "cpu", "--op", "add", "--shape", "2,16,64", "--repeat", "3");
        Assert.Equal(0, code);
        Assert.Contains("| op | shape | time (ms) | GB/s | GFLOP/s | % of peak |", output, StringComparison.Ordinal);
        Assert.Matches(@"\| add \| B,T,D = 2,16,64 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| n/a \|", output);
        var (old, _, err) = CliTests.Run("bench", "kernels", "--device", "cpu");
        Assert.NotEqual(0, old);
        Assert.Contains("available: forward, ops, ptxas", err, StringComparison.Ordinal);
    }
}

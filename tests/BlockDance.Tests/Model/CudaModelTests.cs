using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Dit.Sampling;
using BlockDance.Kernels;
using BlockDance.Kernels.Cpu;
using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;
using BlockDance.Runtime.Safetensors;
using Xunit;

namespace BlockDance.Tests.Model;

/// <summary>
/// The whole model and sampler on the CUDA code path, run by the emulator (cuda-emu): parity with PyTorch in fp32,
/// 16-bit runs within their precision of the fp32 run, and the feature cache resident on the device. These tests read
/// process-wide emulator counters, so they run alone.
/// </summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class CudaModelTests
{
    private static IOps Open(DType type) => Backends.Open("cuda-emu", 0, type);

    private static float[] Forward(IOps ops, string weights, string dumpName, DitNumerics numerics, out float[][] blocks)
    {
        var (output, recorded, _) = DumpForward.Run(ops, weights, dumpName, numerics);
        blocks = [.. recorded];
        return output;
    }

    [Theory]
    [InlineData("dit_tiny_original.safetensors", "dit_tiny_original.dump.safetensors", DitLayout.Original)]
    [InlineData("dit_tiny_diffusers.safetensors", "dit_tiny_diffusers.dump.safetensors", DitLayout.Diffusers)]
    [InlineData("dit_tiny_p4_original.safetensors", "dit_tiny_p4_original.dump.safetensors", DitLayout.Original)]
    public void Fp32_forward_on_cuda_emu_matches_pytorch(string weights, string dumpName, DitLayout layout)
    {
        using var ops = Open(DType.F32);
        var output = Forward(ops, weights, dumpName, DitNumerics.For(layout), out var blocks);
        using var dump = SafetensorsFile.Open(Fixtures.Path(dumpName));
        Assert.Equal(dump.Tensors.Count(t => t.Name.StartsWith("outputs.blocks.", StringComparison.Ordinal)), blocks.Length);
        for (int i = 0; i < blocks.Length; i++)
        {
            var (rel, report) = Reference.Compare(blocks[i], dump.ReadFloat32($"outputs.blocks.{i}"));
            Assert.True(rel <= 1e-4, $"block {i}: {report}");
        }
        var (outRel, outReport) = Reference.Compare(output, dump.ReadFloat32("outputs.out"));
        Assert.True(outRel <= 1e-4, outReport);
    }

    [Theory]
    [InlineData("dit_tiny_original.safetensors", "dit_tiny_original.dump.safetensors")]
    [InlineData("dit_tiny_diffusers.safetensors", "dit_tiny_diffusers.dump.safetensors")]
    [InlineData("dit_tiny_original.safetensors", "dit_tiny_original.ancestral.dump.safetensors")]
    public void Fp32_sampling_on_cuda_emu_matches_pytorch(string weights, string dumpName)
    {
        var (code, output, _) = Cli.CliTests.Run("parity", "--weights", Fixtures.Path(weights), "--dump", Fixtures.Path(dumpName), "--device", "cuda-emu");
        Assert.True(code == 0, output);
        Assert.Contains("sample.out", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(DType.F16, 4e-3)]
    [InlineData(DType.BF16, 3e-2)]
    public void Sixteen_bit_forward_stays_within_its_precision_of_the_fp32_run(DType type, double tolerance)
    {
        // Tolerance by the storage type's precision: f16 keeps 11 significant bits (unit round-off 4.9e-4), bf16 8 bits
        // (3.9e-3); a 4-block forward rounds every activation and weight, measured ~1e-3 (f16) and ~9e-3 (bf16).
        float[] reference;
        using (var f32 = Open(DType.F32))
            reference = Forward(f32, "dit_tiny_original.safetensors", "dit_tiny_original.dump.safetensors", DitNumerics.Original, out _);
        using var ops = Open(type);
        var output = Forward(ops, "dit_tiny_original.safetensors", "dit_tiny_original.dump.safetensors", DitNumerics.Original, out _);
        var (rel, report) = Reference.Compare(output, reference);
        Assert.True(rel <= tolerance, $"{type}: {report}");
        Assert.True(rel > 0, "16-bit storage must actually round");
    }

    [Fact]
    public void BlockDance_on_cuda_emu_has_the_cpu_plan_and_result()
    {
        var request = new GenerationRequest { Labels = [3, 8], Steps = 20, Seed = 11, Cache = CachePolicy.Parse("blockdance:n=3") };
        float[] Run(IOps ops, out string letters)
        {
            using var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
            using var model = DitModel.Load(checkpoint, ops);
            using var run = new SamplingRun(model, request);
            letters = run.Plan.Letters;
            return run.Run();
        }
        float[] cpu, cuda;
        string cpuPlan, cudaPlan;
        using (var ops = new CpuOps())
            cpu = Run(ops, out cpuPlan);
        using (var ops = Open(DType.F32))
            cuda = Run(ops, out cudaPlan);
        Assert.Equal(cpuPlan, cudaPlan);
        Assert.Contains('R', cudaPlan);
        var (rel, report) = Reference.Compare(cuda, cpu);
        Assert.True(rel <= 1e-4, report);
    }

    [Fact]
    public void The_feature_cache_stays_on_the_device_and_the_loop_allocates_nothing()
    {
        using var ops = Open(DType.F32);
        var device = (CudaDevice)ops.Device;
        var emu = device.Emulator!;
        using var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
        using var model = DitModel.Load(checkpoint, ops);
        using var run = new SamplingRun(model, new GenerationRequest
        {
            Labels = [1, 2], Steps = 20, Sampler = SamplerKind.Ancestral, Cache = CachePolicy.Parse("blockdance:n=2"),
        });
        Assert.Equal("FFFFFFFFCRCRCRCRCRCF", run.Plan.Letters);
        while (run.NextStep < 10)   // warm-up: modules compiled, workspace grown, JIT tiers
            run.Step();
        // Counters of every step are kept in preallocated arrays and checked afterwards: assertions allocate.
        var starts = new EmulatorCounters[8];
        var ends = new EmulatorCounters[8];
        var before = emu.Counters;
        long managed = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 8; i++)
        {
            starts[i] = emu.Counters;
            run.Step();
            ends[i] = emu.Counters;
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - managed;
        var after = emu.Counters;
        int reuseSteps = 0;
        for (int i = 0; i < 8; i++)
        {
            if (run.Plan[10 + i] != StepKind.Reuse)
                continue;
            reuseSteps++;
            Assert.Equal(starts[i].HostToDeviceCopies, ends[i].HostToDeviceCopies);   // no host↔device copy in a Reuse step
            Assert.Equal(starts[i].DeviceToHostCopies, ends[i].DeviceToHostCopies);
            Assert.True(ends[i].DeviceToDeviceCopies > starts[i].DeviceToDeviceCopies);  // the cache is loaded on the device
        }
        Assert.Equal(4, reuseSteps);
        Assert.Equal(before.LiveAllocations, after.LiveAllocations);   // no device allocation in the steady state
        Assert.Equal(before.LiveBytes, after.LiveBytes);
        Assert.Equal(before.HostCopies, after.HostCopies);             // no host copy in any steady-state step
        Assert.True(after.Launches > before.Launches);
        Assert.Equal(0, allocated);                                    // and no managed allocation on the driving thread
    }

}

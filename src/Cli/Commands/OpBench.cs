using System.Globalization;
using System.Text;
using BlockDance.Kernels;
using BlockDance.Kernels.Harness;
using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;

namespace BlockDance.Cli.Commands;

/// <summary>
/// <c>blockdance bench ops</c>: the op harness's perf mode. Times every op (or <c>--op</c>) of the backend at its
/// DiT-XL/2 shape (batch 2 = one image with guidance, 256×256 → T = 256 tokens, D = 1152, 16 heads) or at
/// <c>--shape</c>: device events on CUDA, the wall clock on the CPU. Reports napkin-math memory traffic (GB/s) and
/// arithmetic (GFLOP/s) against the device's peak where its attributes give one. On the emulator the figures measure
/// the CPU emulation and are labelled as such.
/// </summary>
internal static class OpBench
{
    public static string Run(IOps ops, IReadOnlyList<OpCase> cases, double[]? shape, int repeat, TextWriter progress)
    {
        var rows = new List<(string Op, string Shape, OpTiming Timing)>();
        foreach (var op in cases)
        {
            var s = shape ?? op.BenchShape;
            progress.Write($"\r{op.Name,-28}");
            rows.Add((op.Name, $"{op.Shape} = {OpHarness.Format(s)}", OpHarness.Perf(ops, op, s, repeat)));
        }
        progress.Write("\r" + new string(' ', 40) + "\r");

        var dev = ops.Device;
        var (peakGBs, peakTflops, label) = Peaks(dev);
        var sb = new StringBuilder();
        var ci = CultureInfo.InvariantCulture;
        sb.AppendLine(ci, $"device: {(dev is CudaDevice c ? c.ToString() : dev.Name)}; activations {ops.ActivationType.ShortName()}; {label}");
        sb.AppendLine(ci, $"shapes: {(shape is null ? "DiT-XL/2 at 256×256, batch 2 (one image with guidance): T = 256, D = 1152, 16 heads" : "--shape")}; median of {repeat} runs");
        sb.AppendLine();
        sb.AppendLine("| op | shape | time (ms) | GB/s | GFLOP/s | % of peak |");
        sb.AppendLine("|---|---|---|---|---|---|");
        foreach (var (op, s, t) in rows)
        {
            string share = peakGBs > 0 && peakTflops > 0
                ? (t.Flops / t.Bytes > 20 ? $"{t.GFlops / (peakTflops * 1e3):P1} of FLOP/s" : $"{t.GBs / peakGBs:P1} of bandwidth") : "n/a";
            sb.AppendLine(ci, $"| {op} | {s} | {t.Milliseconds:F4} | {t.GBs:F1} | {(t.Flops > 0 ? t.GFlops.ToString("F1", ci) : "-")} | {share} |");
        }
        return sb.ToString();
    }

    /// <summary>Peak memory bandwidth (GB/s) and fp32 throughput (TFLOP/s) from the device's attributes, when it has them.</summary>
    private static (double GBs, double Tflops, string Label) Peaks(Device dev)
    {
        if (dev is not CudaDevice cuda)
            return (0, 0, "CPU device: wall-clock times, no peak known");
        if (cuda.Backend == CudaBackend.Emulator)
            return (0, 0, "EMULATED: the CUDA kernels run on the CPU emulator; these times measure the emulation, not a GPU");
        var (gbs, tflops) = (cuda.PeakMemoryBandwidthGBs, cuda.PeakFp32Tflops);
        return (gbs, tflops, gbs > 0 && tflops > 0
            ? string.Create(CultureInfo.InvariantCulture, $"CUDA events; peaks from the attributes: {gbs:F0} GB/s, {tflops:F1} TFLOP/s fp32")
            : "CUDA events; the device's attributes give no peak");
    }

    /// <summary>The cases <c>--op</c> names (comma-separated), or all; and the <c>--shape</c>, which needs exactly one op.</summary>
    public static (IReadOnlyList<OpCase> Cases, double[]? Shape) Select(ParsedArgs args)
    {
        IReadOnlyList<OpCase> cases;
        try
        {
            cases = args.String("--op") is string names
                ? names.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(OpCases.Get).ToList()
                : OpCases.All;
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"--op: {e.Message}");
        }
        if (args.String("--shape") is not string text)
            return (cases, null);
        if (cases.Count != 1)
            throw new UsageException("--shape needs --op naming one op (the meaning of the numbers is the op's: see test-ops --list)");
        try
        {
            return (cases, OpHarness.ParseShape(text));
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"--shape: {e.Message}");
        }
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Text;
using BlockDance.Kernels.Cpu;
using BlockDance.Runtime;

namespace BlockDance.Bench;

/// <summary>
/// The CPU device's GEMM (<c>CpuOps.Linear</c> with a weight view, packed once) next to OpenBLAS <c>cblas_sgemm</c>
/// (the same op with <c>PackWeights</c> off) on DiT-S/2's and DiT-B/2's products at batch 2 (M = 2·256 tokens):
/// qkv, attention projection, MLP fc1 and fc2, with 1 and 2 threads, alternating, in one process. Each cell is the
/// median of <c>rounds</c> rounds, each round the best of the calls that fit in ~60 ms (a shared machine only ever makes
/// a call slower); % of peak is against the FMA peak of the same thread count measured at the start of the run.
/// </summary>
internal static class Gemm
{
    private static readonly (string Model, int D)[] Models = [("S/2", 384), ("B/2", 768)];

    /// <summary>Runs the table and returns it as Markdown.</summary>
    public static string Run(int rounds, int[] threadCounts)
    {
        var ci = CultureInfo.InvariantCulture;
        var peak = threadCounts.ToDictionary(t => t, t => Peak.Fma(t, 3).Gflops);
        var sb = new StringBuilder();
        sb.AppendLine(string.Create(ci, $"peak FMA: {string.Join(", ", threadCounts.Select(t => $"{peak[t]:F1} GFLOP/s with {t} thread(s)"))}; micro-kernel ISA {Isa}"));
        sb.AppendLine();
        sb.AppendLine("| model | product | M×N×K | threads | ours GFLOP/s | % peak | OpenBLAS GFLOP/s | % peak | ours / OpenBLAS time |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var (model, d) in Models)
            foreach (var (name, n, k) in new[] { ("qkv", 3 * d, d), ("attn proj", d, d), ("fc1", 4 * d, d), ("fc2", d, 4 * d) })
                foreach (int t in threadCounts)
                {
                    var (ours, blas) = Measure(512, n, k, t, rounds);
                    double flop = 2.0 * 512 * n * k;
                    double go = flop / ours / 1e6, gb = flop / blas / 1e6;
                    string line = string.Create(ci, $"| {model} | {name} | 512×{n}×{k} | {t} | {go:F1} | {go / peak[t]:P0} | {gb:F1} | {gb / peak[t]:P0} | {ours / blas:F2} |");
                    Console.WriteLine(line);
                    sb.AppendLine(line);
                }
        return sb.ToString();
    }

    private static string Isa => Environment.GetEnvironmentVariable("BLOCKDANCE_CPU_ISA") is { Length: > 0 } forced
        ? $"{forced} (BLOCKDANCE_CPU_ISA)"
        : System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? "AVX-512" : "AVX2+FMA";

    /// <summary>The CPU, the runtime and the load, for the results file.</summary>
    public static string Machine()
    {
        string cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "?";
        string load = File.ReadAllText("/proc/loadavg").Split(' ')[0];
        return $"machine: {cpu}, {Environment.ProcessorCount} logical CPUs; .NET {Environment.Version}; OpenBLAS {OpenBlasVersion()}; load average at the start {load}";
    }

    private static string OpenBlasVersion()
    {
        try
        {
            var psi = new ProcessStartInfo("dpkg-query", "-W -f=${Version} libopenblas0-pthread") { RedirectStandardOutput = true };
            using var p = Process.Start(psi)!;
            string v = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return v.Length > 0 ? $"{v} (Debian libopenblas0-pthread)" : "?";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "?";
        }
    }

    /// <summary>Median over rounds of the best milliseconds per call: (ours, OpenBLAS).</summary>
    private static (double Ours, double Blas) Measure(int m, int n, int k, int threads, int rounds)
    {
        using var ops = new CpuOps(threads);
        var dev = ops.Device;
        var rng = new Random(1);
        using var x = dev.FromFloats(Enumerable.Range(0, m * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), DType.F32, m, k);
        using var owner = dev.FromFloats(Enumerable.Range(0, n * k).Select(_ => (float)(rng.NextDouble() * 0.1 - 0.05)).ToArray(), DType.F32, n * k);
        var w = owner.View(0, n, k);   // a view, like a checkpoint's weight: packed once, on the first call
        using var y = dev.Allocate(DType.F32, m, n);
        var ours = new double[rounds];
        var blas = new double[rounds];
        for (int r = 0; r < rounds; r++)
        {
            ops.PackWeights = true;
            ours[r] = Best(() => ops.Linear(x, w, null, y));
            ops.PackWeights = false;
            blas[r] = Best(() => ops.Linear(x, w, null, y));
        }
        Array.Sort(ours);
        Array.Sort(blas);
        return (ours[rounds / 2], blas[rounds / 2]);
    }

    private static double Best(Action call)
    {
        call();
        double best = double.MaxValue;
        long begin = Stopwatch.GetTimestamp();
        do
        {
            long start = Stopwatch.GetTimestamp();
            call();
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        while (Stopwatch.GetElapsedTime(begin).TotalMilliseconds < 60);
        return best;
    }
}

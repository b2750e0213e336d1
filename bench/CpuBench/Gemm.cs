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
/// On a loaded machine wall-clock rates fall with the share of the cores the process gets; the "per CPU-second" columns
/// divide the work by the process's CPU time over the same calls instead (FLOP per second of one core, the threads'
/// waits included), which the load moves much less: against the one-thread peak, the per-core efficiency.
/// </summary>
internal static class Gemm
{
    private static readonly (string Model, int D)[] Models = [("S/2", 384), ("B/2", 768)];

    /// <summary>Runs the table and returns it as Markdown.</summary>
    /// <param name="rounds">Rounds per cell (the median is shown).</param>
    /// <param name="threadCounts">Thread counts, the first one 1.</param>
    /// <param name="corePeak">One core's FMA peak in GFLOP/s measured before (on a quiet machine), or null to measure it now.</param>
    public static string Run(int rounds, int[] threadCounts, double? corePeak)
    {
        var ci = CultureInfo.InvariantCulture;
        var measured = threadCounts.ToDictionary(t => t, t => Peak.Fma(t, 3).Gflops);
        var peak = threadCounts.ToDictionary(t => t, t => corePeak is { } c ? c * t : measured[t]);
        var sb = new StringBuilder();
        sb.AppendLine(string.Create(ci, $"peak FMA measured at the start of this run: {string.Join(", ", threadCounts.Select(t => $"{measured[t]:F1} GFLOP/s with {t} thread(s)"))}; % of peak below against {string.Join(", ", threadCounts.Select(t => $"{peak[t]:F1}"))}{(corePeak is null ? " (measured now)" : " (--core-peak, measured on a quiet machine)")}; micro-kernel ISA {Isa}"));
        sb.AppendLine();
        sb.AppendLine("| model | product | M×N×K | threads | ours GFLOP/s | % peak | OpenBLAS GFLOP/s | % peak | ours / OpenBLAS time | ours GFLOP per CPU-s | % 1-thread peak | OpenBLAS GFLOP per CPU-s |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var (model, d) in Models)
            foreach (var (name, n, k) in new[] { ("qkv", 3 * d, d), ("attn proj", d, d), ("fc1", 4 * d, d), ("fc2", d, 4 * d) })
                foreach (int t in threadCounts)
                {
                    var (ours, blas, oursCpu, blasCpu) = Measure(512, n, k, t, rounds);
                    double flop = 2.0 * 512 * n * k;
                    double go = flop / ours / 1e6, gb = flop / blas / 1e6, co = flop / oursCpu / 1e6, cb = flop / blasCpu / 1e6;
                    string line = string.Create(ci, $"| {model} | {name} | 512×{n}×{k} | {t} | {go:F1} | {go / peak[t]:P0} | {gb:F1} | {gb / peak[t]:P0} | {ours / blas:F2} | {co:F1} | {co / peak[threadCounts[0]] * threadCounts[0]:P0} | {cb:F1} |");
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

    /// <summary>Median over rounds of the best milliseconds per call and of the CPU milliseconds per call: ours, OpenBLAS.</summary>
    private static (double Ours, double Blas, double OursCpu, double BlasCpu) Measure(int m, int n, int k, int threads, int rounds)
    {
        using var ops = new CpuOps(threads);
        var (x, owner) = Operands(ops.Device, m, n, k);
        using var xOwned = x;
        using var wOwned = owner;
        var w = owner.View(0, n, k);   // a view, like a checkpoint's weight: packed once, on the first call
        using var y = ops.Device.Allocate(DType.F32, m, n);
        double[] ours = new double[rounds], blas = new double[rounds], oursCpu = new double[rounds], blasCpu = new double[rounds];
        ops.PackWeights = true;
        for (long t0 = Stopwatch.GetTimestamp(); Stopwatch.GetElapsedTime(t0).TotalMilliseconds < 300;)
            ops.Linear(x, w, null, y);   // warm-up: the JIT's tiers settle (the first cell of a run was sometimes half speed)
        for (int r = 0; r < rounds; r++)
        {
            ops.PackWeights = true;
            (ours[r], oursCpu[r]) = Best(() => ops.Linear(x, w, null, y));
            ops.PackWeights = false;
            (blas[r], blasCpu[r]) = Best(() => ops.Linear(x, w, null, y));
        }
        return (Median(ours), Median(blas), Median(oursCpu), Median(blasCpu));
    }

    /// <summary>Seeded operands of an [m, k] · [n, k]ᵀ product: X in [−1, 1), and the weight's storage [n·k] in [−0.05, 0.05).</summary>
    internal static (Tensor X, Tensor WeightStorage) Operands(Device dev, int m, int n, int k)
    {
        var rng = new Random(1);
        var x = dev.FromFloats(Enumerable.Range(0, m * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), DType.F32, m, k);
        var w = dev.FromFloats(Enumerable.Range(0, n * k).Select(_ => (float)(rng.NextDouble() * 0.1 - 0.05)).ToArray(), DType.F32, n * k);
        return (x, w);
    }

    private static double Median(double[] v)
    {
        Array.Sort(v);
        return v[v.Length / 2];
    }

    /// <summary>The best wall-clock milliseconds of the calls that fit in ~60 ms, and the process's CPU milliseconds per call over them.</summary>
    private static (double Best, double Cpu) Best(Action call)
    {
        call();
        double best = double.MaxValue;
        int calls = 0;
        var process = Process.GetCurrentProcess();
        process.Refresh();
        var cpu0 = process.TotalProcessorTime;
        long begin = Stopwatch.GetTimestamp();
        do
        {
            long start = Stopwatch.GetTimestamp();
            call();
            calls++;
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        while (Stopwatch.GetElapsedTime(begin).TotalMilliseconds < 60 || calls < 3);
        process.Refresh();
        return (best, (process.TotalProcessorTime - cpu0).TotalMilliseconds / calls);
    }
}

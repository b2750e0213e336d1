using System.Diagnostics;
using System.Globalization;
using BlockDance.Kernels.Cpu;
using BlockDance.Runtime;

namespace BlockDance.Bench;

/// <summary>
/// What a cold weight costs a product: DiT-S/2's and B/2's largest products and their modulation GEMVs (M = 2), each
/// called alternately with the same packed weight (hot: in cache after the first call) and with the next of enough
/// packed copies to exceed this machine's 260 MiB L3 (cold: from memory, as in a forward whose weights do not fit).
/// Median milliseconds per call over one pass of the copies, three rounds.
/// </summary>
internal static class ColdGemm
{
    public static void Run(int threads)
    {
        var ci = CultureInfo.InvariantCulture;
        foreach (var (name, m, n, k) in new[] { ("S/2 qkv", 512, 1152, 384), ("S/2 fc2", 512, 384, 1536), ("B/2 qkv", 512, 2304, 768), ("B/2 fc2", 512, 768, 3072), ("S/2 adaLN", 2, 2304, 384), ("B/2 adaLN", 2, 4608, 768) })
        {
            using var ops = new CpuOps(threads);
            var dev = ops.Device;
            var (x, owner) = Gemm.Operands(dev, m, n, k);
            using var xOwned = x;
            using var wOwned = owner;
            int copies = (int)Math.Max(2, 320L * 1024 * 1024 / ((long)n * k * 4));
            var ws = Enumerable.Range(0, copies).Select(_ => owner.View(0, n, k)).ToArray();
            using var y = dev.Allocate(DType.F32, m, n);
            foreach (var w in ws)
                ops.Linear(x, w, null, y);   // pack every copy once
            double flop = 2.0 * m * n * k;
            for (int round = 0; round < 3; round++)
            {
                var hot = new List<double>();
                var cold = new List<double>();
                for (int i = 0; i < copies; i++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    ops.Linear(x, ws[0], null, y);
                    hot.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                    t0 = Stopwatch.GetTimestamp();
                    ops.Linear(x, ws[i], null, y);
                    cold.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                }
                hot.Sort();
                cold.Sort();
                double h = hot[hot.Count / 2], c = cold[cold.Count / 2];
                Console.WriteLine(string.Create(ci, $"{name} {m}x{n}x{k} threads {threads}: hot {h:F3} ms ({flop / h / 1e6:F0} GFLOP/s), cold {c:F3} ms ({flop / c / 1e6:F0} GFLOP/s), {copies} copies"));
            }
        }
    }
}

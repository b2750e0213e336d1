using System.Diagnostics;
using System.Globalization;
using System.Text;
using BlockDance.Kernels.Cpu;
using BlockDance.Runtime;

namespace BlockDance.Bench;

/// <summary>
/// The CPU device's attention alone (<c>CpuOps.Attention</c>) on DiT-S/2's, B/2's and XL/2's shapes at batch 2 and
/// 256 tokens, its qkv staying in cache: milliseconds per call (median over rounds of the best call of each round) and
/// GFLOP/s against the FMA peak of the same thread count (4·T²·D FLOPs per image: the two products).
/// </summary>
internal static class AttentionBench
{
    private static readonly (string Model, int D, int Heads)[] Models = [("S/2", 384, 6), ("B/2", 768, 12), ("XL/2", 1152, 16)];

    /// <summary>Runs the table and returns its lines.</summary>
    public static string Run(int threads, int rounds)
    {
        var ci = CultureInfo.InvariantCulture;
        double peak = Peak.Fma(threads, 3).Gflops;
        var sb = new StringBuilder(string.Create(ci, $"peak FMA {peak:F1} GFLOP/s with {threads} thread(s)\n"));
        using var ops = new CpuOps(threads);
        const int batch = 2, tokens = 256;
        foreach (var (model, d, heads) in Models)
        {
            var rng = new Random(1);
            using var qkv = ops.Device.FromFloats(Enumerable.Range(0, batch * tokens * 3 * d).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), DType.F32, batch, tokens, 3 * d);
            using var y = ops.Device.Allocate(DType.F32, batch, tokens, d);
            var best = new double[rounds];
            for (long w = Stopwatch.GetTimestamp(); Stopwatch.GetElapsedTime(w).TotalMilliseconds < 500;)
                ops.Attention(qkv, heads, y);   // warm-up: the JIT's tiers settle
            for (int r = 0; r < rounds; r++)
            {
                ops.Attention(qkv, heads, y);
                best[r] = double.MaxValue;
                long begin = Stopwatch.GetTimestamp();
                do
                {
                    long start = Stopwatch.GetTimestamp();
                    ops.Attention(qkv, heads, y);
                    best[r] = Math.Min(best[r], Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                }
                while (Stopwatch.GetElapsedTime(begin).TotalMilliseconds < 100);
            }
            Array.Sort(best);
            double ms = best[rounds / 2], gflops = 4.0 * batch * tokens * tokens * d / ms / 1e6;
            string line = string.Create(ci, $"{model}: T {tokens}, D {d}, {heads} heads: {ms:F3} ms per call, {gflops:F1} GFLOP/s, {gflops / peak:P0} of peak (rounds {string.Join(", ", best.Select(b => b.ToString("F3", ci)))})");
            Console.WriteLine(line);
            sb.AppendLine(line);
        }
        return sb.ToString();
    }
}

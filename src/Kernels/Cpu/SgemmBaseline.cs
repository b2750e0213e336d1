using System.Diagnostics;
using System.Runtime.InteropServices;

namespace BlockDance.Kernels.Cpu;

/// <summary>
/// OpenBLAS's own throughput on a list of GEMM shapes: the same products a forward does, with nothing else, timed the
/// same way. The ratio "sgemm-only time / forward time" says how close the forward is to the GEMM speed limit.
/// </summary>
/// <remarks>
/// Two variants. <em>Shared operands</em>: every product reads the same X and W buffers, so after the first product
/// they sit in the cache — OpenBLAS's best case. <em>Distinct operands</em>: every product has its own X, W and Y, as
/// in a forward, where each layer's weight matrix is read from memory once per forward (DiT-S/2 holds 130 MB of them,
/// far more than any cache).
/// </remarks>
internal static unsafe class SgemmBaseline
{
    /// <summary>Median milliseconds over <paramref name="repeat"/> runs of all <paramref name="shapes"/> (row-major Y[M,N] = X[M,K]·W[N,K]ᵀ).</summary>
    public static double Measure(IReadOnlyList<(int M, int N, int K)> shapes, int repeat, bool distinctOperands = false)
    {
        OpenBlas.EnsureLoaded();
        // Offsets of each product's X, W, Y in one arena (all at offset 0 when the operands are shared).
        var offsets = new (long X, long W, long Y)[shapes.Count];
        long floats = 0;
        if (distinctOperands)
        {
            for (int i = 0; i < shapes.Count; i++)
            {
                var (m, n, k) = shapes[i];
                offsets[i] = (floats, floats + Pad((long)m * k), floats + Pad((long)m * k) + Pad((long)n * k));
                floats += Pad((long)m * k) + Pad((long)n * k) + Pad((long)m * n);
            }
        }
        else
        {
            long maxX = shapes.Max(s => (long)s.M * s.K), maxW = shapes.Max(s => (long)s.N * s.K), maxY = shapes.Max(s => (long)s.M * s.N);
            Array.Fill(offsets, (0L, Pad(maxX), Pad(maxX) + Pad(maxW)));
            floats = Pad(maxX) + Pad(maxW) + Pad(maxY);
        }
        float* arena = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
        try
        {
            var rng = new Random(1);
            for (long i = 0; i < floats; i++)
                arena[i] = (float)rng.NextDouble() - 0.5f;
            void RunAll()
            {
                for (int i = 0; i < shapes.Count; i++)
                {
                    var (m, n, k) = shapes[i];
                    var (x, w, y) = offsets[i];
                    OpenBlas.cblas_sgemm(OpenBlas.RowMajor, OpenBlas.NoTrans, OpenBlas.Trans, m, n, k,
                        1f, arena + x, k, arena + w, k, 0f, arena + y, n);
                }
            }
            RunAll();
            var times = new double[repeat];
            for (int r = 0; r < repeat; r++)
            {
                long start = Stopwatch.GetTimestamp();
                RunAll();
                times[r] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
            Array.Sort(times);
            return times[repeat / 2];
        }
        finally
        {
            NativeMemory.AlignedFree(arena);
        }
    }

    private static long Pad(long n) => (n + 15) & ~15L;   // 64-byte alignment for every operand
}

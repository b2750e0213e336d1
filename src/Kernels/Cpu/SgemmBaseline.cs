using System.Diagnostics;
using System.Runtime.InteropServices;

namespace BlockDance.Kernels.Cpu;

/// <summary>
/// OpenBLAS's own throughput on a list of GEMM shapes: the same products a forward does, with nothing else, timed the
/// same way. The ratio "sgemm-only time / forward time" says how close the forward is to the GEMM speed limit.
/// </summary>
public static unsafe class SgemmBaseline
{
    /// <summary>Median milliseconds over <paramref name="repeat"/> runs of all <paramref name="shapes"/> (row-major Y[M,N] = X[M,K]·W[N,K]ᵀ).</summary>
    public static double Measure(IReadOnlyList<(int M, int N, int K)> shapes, int repeat)
    {
        OpenBlas.EnsureLoaded();
        long maxX = shapes.Max(s => (long)s.M * s.K), maxW = shapes.Max(s => (long)s.N * s.K), maxY = shapes.Max(s => (long)s.M * s.N);
        float* x = Alloc(maxX), w = Alloc(maxW), y = Alloc(maxY);
        try
        {
            var rng = new Random(1);
            for (long i = 0; i < maxX; i++) x[i] = (float)rng.NextDouble() - 0.5f;
            for (long i = 0; i < maxW; i++) w[i] = (float)rng.NextDouble() - 0.5f;
            void RunAll()
            {
                foreach (var (m, n, k) in shapes)
                    OpenBlas.cblas_sgemm(OpenBlas.RowMajor, OpenBlas.NoTrans, OpenBlas.Trans, m, n, k, 1f, x, k, w, k, 0f, y, n);
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
            NativeMemory.AlignedFree(x);
            NativeMemory.AlignedFree(w);
            NativeMemory.AlignedFree(y);
        }
    }

    private static float* Alloc(long n) => (float*)NativeMemory.AlignedAlloc((nuint)(n * sizeof(float)), 64);
}

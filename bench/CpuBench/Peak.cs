using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace BlockDance.Bench;

/// <summary>
/// The machine's roofline: the peak fused-multiply-add rate of <c>threads</c> cores (independent FMA chains on the widest
/// vectors the CPU has: 24 AVX-512 or 12 AVX2 accumulators, enough to cover the FMA latency on two pipes) and the memory
/// read bandwidth (a 1 GiB buffer, far larger than any cache, summed by every thread over its own half). Each figure is
/// the best of <c>repeat</c> runs (a shared machine only ever makes a run slower).
/// </summary>
internal static unsafe class Peak
{
    /// <summary>Best GFLOP/s over <paramref name="repeat"/> runs (one FMA = 2 FLOP) and the vector width used.</summary>
    public static (double Gflops, string Isa) Fma(int threads, int repeat)
    {
        const long Iterations = 20_000_000;
        string isa = Avx512F.IsSupported ? "AVX-512 (24 × 16 lanes)" : System.Runtime.Intrinsics.X86.Fma.IsSupported ? "AVX2+FMA (12 × 8 lanes)" : "none";
        double flopsPerThread = Avx512F.IsSupported ? Iterations * 24.0 * 16 * 2 : Iterations * 12.0 * 8 * 2;
        double best = 0;
        for (int r = 0; r < repeat; r++)
        {
            double seconds = RunThreads(threads, _ => { if (Avx512F.IsSupported) Fma512(Iterations); else Fma256(Iterations); });
            best = Math.Max(best, flopsPerThread * threads / seconds / 1e9);
        }
        return (best, isa);
    }

    /// <summary>Best read bandwidth in GB/s (10⁹ bytes) over <paramref name="repeat"/> passes of a 1 GiB buffer.</summary>
    public static double ReadBandwidth(int threads, int repeat)
    {
        const long Floats = 1L << 28;
        float* buffer = (float*)NativeMemory.AlignedAlloc((nuint)(Floats * sizeof(float)), 64);
        try
        {
            new Span<float>(buffer, 1 << 20).Fill(1f);
            RunThreads(threads, t => Fill(buffer, Floats, threads, t));   // first touch by the reading thread
            double best = 0;
            for (int r = 0; r < repeat; r++)
            {
                double seconds = RunThreads(threads, t => Sum(buffer, Floats, threads, t));
                best = Math.Max(best, Floats * sizeof(float) / seconds / 1e9);
            }
            return best;
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    private static double RunThreads(int threads, Action<int> body)
    {
        using var barrier = new Barrier(threads + 1);
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() => { barrier.SignalAndWait(); body(t); barrier.SignalAndWait(); })).ToList();
        workers.ForEach(w => w.Start());
        barrier.SignalAndWait();
        long start = Stopwatch.GetTimestamp();
        barrier.SignalAndWait();
        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        workers.ForEach(w => w.Join());
        return seconds;
    }

    private static void Fill(float* p, long n, int threads, int t)
    {
        long begin = n * t / threads, end = n * (t + 1) / threads;
        new Span<float>(p + begin, (int)Math.Min(int.MaxValue, end - begin)).Fill(1f);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Sum(float* p, long n, int threads, int t)
    {
        long begin = n * t / threads, end = n * (t + 1) / threads;
        if (Avx512F.IsSupported)
        {
            Vector512<float> a = default, b = default, c = default, d = default;
            for (long i = begin; i + 64 <= end; i += 64)
            {
                a += Vector512.Load(p + i); b += Vector512.Load(p + i + 16);
                c += Vector512.Load(p + i + 32); d += Vector512.Load(p + i + 48);
            }
            return Vector512.Sum(a + b + c + d);
        }
        Vector256<float> e = default, f = default, g = default, h = default;
        for (long i = begin; i + 32 <= end; i += 32)
        {
            e += Vector256.Load(p + i); f += Vector256.Load(p + i + 8);
            g += Vector256.Load(p + i + 16); h += Vector256.Load(p + i + 24);
        }
        return Vector256.Sum(e + f + g + h);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Fma512(long iterations)
    {
        var m = Vector512.Create(0.999999f);
        var s = Vector512.Create(1e-7f);
        Vector512<float> a0 = Vector512.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        Vector512<float> a8 = a0, a9 = a0, a10 = a0, a11 = a0, a12 = a0, a13 = a0, a14 = a0, a15 = a0;
        Vector512<float> a16 = a0, a17 = a0, a18 = a0, a19 = a0, a20 = a0, a21 = a0, a22 = a0, a23 = a0;
        for (long i = 0; i < iterations; i++)
        {
            a0 = Avx512F.FusedMultiplyAdd(a0, m, s); a1 = Avx512F.FusedMultiplyAdd(a1, m, s);
            a2 = Avx512F.FusedMultiplyAdd(a2, m, s); a3 = Avx512F.FusedMultiplyAdd(a3, m, s);
            a4 = Avx512F.FusedMultiplyAdd(a4, m, s); a5 = Avx512F.FusedMultiplyAdd(a5, m, s);
            a6 = Avx512F.FusedMultiplyAdd(a6, m, s); a7 = Avx512F.FusedMultiplyAdd(a7, m, s);
            a8 = Avx512F.FusedMultiplyAdd(a8, m, s); a9 = Avx512F.FusedMultiplyAdd(a9, m, s);
            a10 = Avx512F.FusedMultiplyAdd(a10, m, s); a11 = Avx512F.FusedMultiplyAdd(a11, m, s);
            a12 = Avx512F.FusedMultiplyAdd(a12, m, s); a13 = Avx512F.FusedMultiplyAdd(a13, m, s);
            a14 = Avx512F.FusedMultiplyAdd(a14, m, s); a15 = Avx512F.FusedMultiplyAdd(a15, m, s);
            a16 = Avx512F.FusedMultiplyAdd(a16, m, s); a17 = Avx512F.FusedMultiplyAdd(a17, m, s);
            a18 = Avx512F.FusedMultiplyAdd(a18, m, s); a19 = Avx512F.FusedMultiplyAdd(a19, m, s);
            a20 = Avx512F.FusedMultiplyAdd(a20, m, s); a21 = Avx512F.FusedMultiplyAdd(a21, m, s);
            a22 = Avx512F.FusedMultiplyAdd(a22, m, s); a23 = Avx512F.FusedMultiplyAdd(a23, m, s);
        }
        return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 + a12 + a13 + a14 + a15
            + a16 + a17 + a18 + a19 + a20 + a21 + a22 + a23);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Fma256(long iterations)
    {
        var m = Vector256.Create(0.999999f);
        var s = Vector256.Create(1e-7f);
        Vector256<float> a0 = Vector256.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        Vector256<float> a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (long i = 0; i < iterations; i++)
        {
            a0 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a0, m, s); a1 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a1, m, s);
            a2 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a2, m, s); a3 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a3, m, s);
            a4 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a4, m, s); a5 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a5, m, s);
            a6 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a6, m, s); a7 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a7, m, s);
            a8 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a8, m, s); a9 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a9, m, s);
            a10 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a10, m, s); a11 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a11, m, s);
        }
        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }
}

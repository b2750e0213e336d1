using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace BlockDance.Kernels.Cpu;

/// <summary>
/// The CPU device's own GEMM for <c>Y[M, N] = act(X[M, K] · Wᵀ + b)</c> with the weight W [N, K] packed once into
/// panels of <see cref="NR"/> output columns, k-major (<c>P[panel][k][j] = W[panel·NR + j, k]</c>, the last panel
/// zero-padded), so that the micro-kernel reads one contiguous 128-byte row of the panel per k and broadcasts X's
/// elements. The K dimension is walked in blocks of <see cref="KC"/> (a 32 KiB panel block stays in L1 while every row
/// block of X streams past it from L2); each output element is one FMA chain in k order, whatever the thread count,
/// so results do not depend on the threads. Micro-kernels: 8 rows × 32 columns in 16 AVX-512 accumulators, or
/// 4 rows × 16 columns in 8 AVX2 accumulators on CPUs without AVX-512; leftover rows go one at a time.
/// </summary>
internal static unsafe class CpuGemm
{
    /// <summary>Output columns per packed panel.</summary>
    public const int NR = 32;
    /// <summary>Depth of a K block.</summary>
    public const int KC = 256;
    private const int MR = 8;

    /// <summary>Floats of the packed form of an [n, k] weight.</summary>
    public static long PackedFloats(int n, int k) => (long)((n + NR - 1) / NR) * NR * k;

    /// <summary>Packs W [n, k] (row-major) into <paramref name="dst"/> (<see cref="PackedFloats"/> floats).</summary>
    public static void Pack(float* w, int n, int k, float* dst)
    {
        int panels = (n + NR - 1) / NR;
        for (int p = 0; p < panels; p++)
        {
            float* panel = dst + (long)p * k * NR;
            int cols = Math.Min(NR, n - p * NR);
            if (cols < NR)
                new Span<float>(panel, k * NR).Clear();
            for (int j = 0; j < cols; j++)
            {
                float* src = w + (long)(p * NR + j) * k;
                for (int kk = 0; kk < k; kk++)
                    panel[(long)kk * NR + j] = src[kk];
            }
        }
    }

    /// <summary>One product: work items are (panel, row chunk) pairs, panel-major, so a thread's panels stay in its caches.</summary>
    public struct Job : IRangeJob
    {
        public float* X, Packed, Bias, Y;
        public int M, N, K, RowChunks;
        public Activation Act;

        /// <summary>Row chunks per panel: one when there are enough panels for the threads, else enough to share out rows.</summary>
        public static int ChunksFor(int m, int n, int threads)
        {
            int panels = (n + NR - 1) / NR;
            if (panels >= 2 * threads || threads == 1)
                return 1;
            return Math.Max(1, Math.Min((m + MR - 1) / MR, 2 * threads));
        }

        public readonly void Execute(int start, int end)
        {
            float* tile = stackalloc float[MR * NR];
            for (int item = start; item < end; item++)
            {
                int panel = item / RowChunks, chunk = item % RowChunks;
                // Row ranges in multiples of MR, so that micro-tiles are full wherever possible.
                int blocks = (M + MR - 1) / MR;
                int r0 = Math.Min(M, (int)((long)blocks * chunk / RowChunks) * MR);
                int r1 = Math.Min(M, (int)((long)blocks * (chunk + 1) / RowChunks) * MR);
                if (r0 < r1)
                    Panel(panel, r0, r1, tile);
            }
        }

        private readonly void Panel(int panel, int r0, int r1, float* tile)
        {
            int n0 = panel * NR, cols = Math.Min(NR, N - n0);
            float* bp = Packed + (long)panel * K * NR;
            if (cols < NR)
            {
                // The last, partial panel: whole K into a full-width tile, then the valid columns out.
                for (int r = r0; r < r1; r += MR)
                {
                    int rows = Math.Min(MR, r1 - r);
                    Block(X + (long)r * K, K, bp, K, tile, NR, rows, accumulate: false);
                    for (int i = 0; i < rows; i++)
                    {
                        new ReadOnlySpan<float>(tile + i * NR, cols).CopyTo(new Span<float>(Y + (long)(r + i) * N + n0, cols));
                        Epilogue(Y + (long)(r + i) * N + n0, n0, cols);
                    }
                }
                return;
            }
            for (int k0 = 0; k0 < K; k0 += KC)
            {
                int kc = Math.Min(KC, K - k0);
                bool last = k0 + kc == K;
                for (int r = r0; r < r1; r += MR)
                {
                    int rows = Math.Min(MR, r1 - r);
                    float* y = Y + (long)r * N + n0;
                    Block(X + (long)r * K + k0, K, bp + (long)k0 * NR, kc, y, N, rows, accumulate: k0 > 0);
                    if (last)
                        for (int i = 0; i < rows; i++)
                            Epilogue(y + (long)i * N, n0, NR);
                }
            }
        }

        private readonly void Epilogue(float* y, int n0, int cols)
        {
            if (Bias is null && Act == Activation.None)
                return;
            var span = new Span<float>(y, cols);
            if (Bias is not null)
                TensorPrimitives.Add(span, new ReadOnlySpan<float>(Bias + n0, cols), span);
            CpuMath.Activate(span, Act);
        }
    }

    /// <summary>C[rows, NR] (+)= X[rows, kc] · P[kc, NR] for rows ≤ 8; X row stride ldx, C row stride ldc.</summary>
    private static void Block(float* x, int ldx, float* p, int kc, float* c, int ldc, int rows, bool accumulate)
    {
        if (Avx512F.IsSupported)
        {
            if (rows == MR)
                Kernel8x32(x, ldx, p, kc, c, ldc, accumulate);
            else
                for (int i = 0; i < rows; i++)
                    Kernel1x32(x + (long)i * ldx, p, kc, c + (long)i * ldc, accumulate);
            return;
        }
        int r = 0;
        if (Fma.IsSupported)
        {
            for (; r + 4 <= rows; r += 4)
            {
                Kernel4x16(x + (long)r * ldx, ldx, p, kc, c + (long)r * ldc, ldc, accumulate);
                Kernel4x16(x + (long)r * ldx, ldx, p + 16, kc, c + (long)r * ldc + 16, ldc, accumulate);
            }
            for (; r < rows; r++)
                Kernel1x32Avx2(x + (long)r * ldx, p, kc, c + (long)r * ldc, accumulate);
        }
        for (; r < rows; r++)
            Scalar1(x + (long)r * ldx, p, kc, c + (long)r * ldc, accumulate);
    }

    private static void Kernel1x32Avx2(float* x, float* p, int kc, float* c, bool accumulate)
    {
        var c0 = accumulate ? Vector256.Load(c) : Vector256<float>.Zero;
        var c1 = accumulate ? Vector256.Load(c + 8) : Vector256<float>.Zero;
        var c2 = accumulate ? Vector256.Load(c + 16) : Vector256<float>.Zero;
        var c3 = accumulate ? Vector256.Load(c + 24) : Vector256<float>.Zero;
        for (int k = 0; k < kc; k++, p += NR)
        {
            var a = Vector256.Create(x[k]);
            c0 = Fma.MultiplyAdd(a, Vector256.Load(p), c0);
            c1 = Fma.MultiplyAdd(a, Vector256.Load(p + 8), c1);
            c2 = Fma.MultiplyAdd(a, Vector256.Load(p + 16), c2);
            c3 = Fma.MultiplyAdd(a, Vector256.Load(p + 24), c3);
        }
        c0.Store(c); c1.Store(c + 8); c2.Store(c + 16); c3.Store(c + 24);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel8x32(float* x, int ldx, float* p, int kc, float* c, int ldc, bool accumulate)
    {
        Vector512<float> c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
        float* cr = c;
        if (accumulate)
        {
            c00 = Vector512.Load(cr); c01 = Vector512.Load(cr + 16); cr += ldc;
            c10 = Vector512.Load(cr); c11 = Vector512.Load(cr + 16); cr += ldc;
            c20 = Vector512.Load(cr); c21 = Vector512.Load(cr + 16); cr += ldc;
            c30 = Vector512.Load(cr); c31 = Vector512.Load(cr + 16); cr += ldc;
            c40 = Vector512.Load(cr); c41 = Vector512.Load(cr + 16); cr += ldc;
            c50 = Vector512.Load(cr); c51 = Vector512.Load(cr + 16); cr += ldc;
            c60 = Vector512.Load(cr); c61 = Vector512.Load(cr + 16); cr += ldc;
            c70 = Vector512.Load(cr); c71 = Vector512.Load(cr + 16);
        }
        else
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = Vector512<float>.Zero;
            c40 = c41 = c50 = c51 = c60 = c61 = c70 = c71 = Vector512<float>.Zero;
        }
        float* x0 = x, x1 = x + ldx, x2 = x1 + ldx, x3 = x2 + ldx, x4 = x3 + ldx, x5 = x4 + ldx, x6 = x5 + ldx, x7 = x6 + ldx;
        for (int k = 0; k < kc; k++)
        {
            var b0 = Vector512.Load(p);
            var b1 = Vector512.Load(p + 16);
            p += NR;
            var a = Vector512.Create(x0[k]); c00 = Avx512F.FusedMultiplyAdd(a, b0, c00); c01 = Avx512F.FusedMultiplyAdd(a, b1, c01);
            a = Vector512.Create(x1[k]); c10 = Avx512F.FusedMultiplyAdd(a, b0, c10); c11 = Avx512F.FusedMultiplyAdd(a, b1, c11);
            a = Vector512.Create(x2[k]); c20 = Avx512F.FusedMultiplyAdd(a, b0, c20); c21 = Avx512F.FusedMultiplyAdd(a, b1, c21);
            a = Vector512.Create(x3[k]); c30 = Avx512F.FusedMultiplyAdd(a, b0, c30); c31 = Avx512F.FusedMultiplyAdd(a, b1, c31);
            a = Vector512.Create(x4[k]); c40 = Avx512F.FusedMultiplyAdd(a, b0, c40); c41 = Avx512F.FusedMultiplyAdd(a, b1, c41);
            a = Vector512.Create(x5[k]); c50 = Avx512F.FusedMultiplyAdd(a, b0, c50); c51 = Avx512F.FusedMultiplyAdd(a, b1, c51);
            a = Vector512.Create(x6[k]); c60 = Avx512F.FusedMultiplyAdd(a, b0, c60); c61 = Avx512F.FusedMultiplyAdd(a, b1, c61);
            a = Vector512.Create(x7[k]); c70 = Avx512F.FusedMultiplyAdd(a, b0, c70); c71 = Avx512F.FusedMultiplyAdd(a, b1, c71);
        }
        cr = c;
        c00.Store(cr); c01.Store(cr + 16); cr += ldc;
        c10.Store(cr); c11.Store(cr + 16); cr += ldc;
        c20.Store(cr); c21.Store(cr + 16); cr += ldc;
        c30.Store(cr); c31.Store(cr + 16); cr += ldc;
        c40.Store(cr); c41.Store(cr + 16); cr += ldc;
        c50.Store(cr); c51.Store(cr + 16); cr += ldc;
        c60.Store(cr); c61.Store(cr + 16); cr += ldc;
        c70.Store(cr); c71.Store(cr + 16);
    }

    private static void Kernel1x32(float* x, float* p, int kc, float* c, bool accumulate)
    {
        var c0 = accumulate ? Vector512.Load(c) : Vector512<float>.Zero;
        var c1 = accumulate ? Vector512.Load(c + 16) : Vector512<float>.Zero;
        for (int k = 0; k < kc; k++, p += NR)
        {
            var a = Vector512.Create(x[k]);
            c0 = Avx512F.FusedMultiplyAdd(a, Vector512.Load(p), c0);
            c1 = Avx512F.FusedMultiplyAdd(a, Vector512.Load(p + 16), c1);
        }
        c0.Store(c);
        c1.Store(c + 16);
    }

    /// <summary>AVX2: C[4, 16] (+)= X[4, kc] · P[kc, 16 of NR].</summary>
    private static void Kernel4x16(float* x, int ldx, float* p, int kc, float* c, int ldc, bool accumulate)
    {
        Vector256<float> c00, c01, c10, c11, c20, c21, c30, c31;
        if (accumulate)
        {
            c00 = Vector256.Load(c); c01 = Vector256.Load(c + 8);
            c10 = Vector256.Load(c + ldc); c11 = Vector256.Load(c + ldc + 8);
            c20 = Vector256.Load(c + 2 * ldc); c21 = Vector256.Load(c + 2 * ldc + 8);
            c30 = Vector256.Load(c + 3 * ldc); c31 = Vector256.Load(c + 3 * ldc + 8);
        }
        else
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = Vector256<float>.Zero;
        float* x0 = x, x1 = x + ldx, x2 = x1 + ldx, x3 = x2 + ldx;
        for (int k = 0; k < kc; k++, p += NR)
        {
            var b0 = Vector256.Load(p);
            var b1 = Vector256.Load(p + 8);
            var a = Vector256.Create(x0[k]); c00 = Fma.MultiplyAdd(a, b0, c00); c01 = Fma.MultiplyAdd(a, b1, c01);
            a = Vector256.Create(x1[k]); c10 = Fma.MultiplyAdd(a, b0, c10); c11 = Fma.MultiplyAdd(a, b1, c11);
            a = Vector256.Create(x2[k]); c20 = Fma.MultiplyAdd(a, b0, c20); c21 = Fma.MultiplyAdd(a, b1, c21);
            a = Vector256.Create(x3[k]); c30 = Fma.MultiplyAdd(a, b0, c30); c31 = Fma.MultiplyAdd(a, b1, c31);
        }
        c00.Store(c); c01.Store(c + 8);
        c10.Store(c + ldc); c11.Store(c + ldc + 8);
        c20.Store(c + 2 * ldc); c21.Store(c + 2 * ldc + 8);
        c30.Store(c + 3 * ldc); c31.Store(c + 3 * ldc + 8);
    }

    /// <summary>One row without wide vectors: C[1, NR] (+)= X[1, kc] · P[kc, NR], one fused multiply-add per term.</summary>
    private static void Scalar1(float* x, float* p, int kc, float* c, bool accumulate)
    {
        for (int j = 0; j < NR; j++)
        {
            float acc = accumulate ? c[j] : 0f;
            for (int k = 0; k < kc; k++)
                acc = MathF.FusedMultiplyAdd(x[k], p[(long)k * NR + j], acc);
            c[j] = acc;
        }
    }

    /// <summary>A weight's packed copy in native memory, freed with the weight's tensor object (or on <see cref="Dispose"/>).</summary>
    internal sealed class PackedWeight : IDisposable
    {
        public PackedWeight(float* w, int n, int k)
        {
            Floats = PackedFloats(n, k);
            Data = (float*)NativeMemory.AlignedAlloc((nuint)(Floats * sizeof(float)), 64);
            Pack(w, n, k, Data);
            N = n;
            K = k;
        }

        public float* Data { get; private set; }
        public long Floats { get; }
        public int N { get; }
        public int K { get; }

        public void Dispose()
        {
            NativeMemory.AlignedFree(Data);
            Data = null;
            GC.SuppressFinalize(this);
        }

        ~PackedWeight() => NativeMemory.AlignedFree(Data);
    }
}

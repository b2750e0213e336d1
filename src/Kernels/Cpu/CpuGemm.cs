using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace BlockDance.Kernels.Cpu;

/// <summary>
/// The CPU device's own GEMM for <c>Y[M, N] = act(X[M, K] · Wᵀ + b)</c>. The weight W [N, K] is packed once into
/// panels of <see cref="NR"/> output columns, k-major (<c>P[panel][k][j] = W[panel·NR + j, k]</c>, the last panel
/// zero-padded); before each product X is packed into blocks of <see cref="MR"/> rows, k-major
/// (<c>A[block][k][i] = X[block·MR + i, k]</c>, the last block zero-padded), so that the micro-kernel reads two
/// contiguous streams: one row of the panel per k as vectors, and MR elements of X per k, broadcast. The K dimension is
/// walked in blocks of <see cref="KC"/>, outermost: a panel's K block (24 KiB) stays in L1 while every row block of X
/// streams past it from L2, and X's K block (M × KC) stays in L2 while the panels stream past it. Each output element is
/// one FMA chain in k order, whatever the thread count and whichever micro-kernel runs (AVX-512, AVX2 or scalar all give
/// the same bits). Micro-kernels: 8 rows × 48 columns in 24 AVX-512 accumulators (the other 8 registers hold the
/// panel row and a broadcast), or four 4 × 24 AVX2 tiles of 12 accumulators on CPUs without AVX-512.
/// </summary>
internal static unsafe class CpuGemm
{
    /// <summary>Output columns per packed panel: three 16-float AVX-512 vectors, divides every DiT width (384, 768, 1152 and their multiples).</summary>
    public const int NR = 48;
    /// <summary>Rows per packed block of X and per micro-tile.</summary>
    public const int MR = 8;
    /// <summary>Depth of a K block.</summary>
    public const int KC = 128;

    /// <summary>The micro-kernel a product runs on; all give the same bits.</summary>
    internal enum Isa
    {
        /// <summary>One fused multiply-add per term, no wide vectors.</summary>
        Scalar,
        /// <summary>256-bit AVX2 + FMA.</summary>
        Avx2,
        /// <summary>512-bit AVX-512F.</summary>
        Avx512,
    }

    /// <summary>The widest micro-kernel this CPU runs.</summary>
    internal static Isa Best => Avx512F.IsSupported ? Isa.Avx512 : Fma.IsSupported && Avx2.IsSupported ? Isa.Avx2 : Isa.Scalar;

    /// <summary>Whether this CPU runs <paramref name="isa"/>.</summary>
    internal static bool Supported(Isa isa) => isa <= Best;

    /// <summary>Floats of the packed form of an [n, k] weight.</summary>
    public static long PackedFloats(int n, int k) => (long)((n + NR - 1) / NR) * NR * k;

    /// <summary>Floats of the packed form of an [m, k] input (<see cref="PackXJob"/>).</summary>
    public static long PackedXFloats(int m, int k) => (long)((m + MR - 1) / MR) * MR * k;

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

    /// <summary>Packs X [m, k] into blocks of MR rows, k-major (<see cref="PackedXFloats"/> floats): one work item per row block.</summary>
    public struct PackXJob : IRangeJob
    {
        public float* X, Dst;
        public int M, K;

        public readonly void Execute(int start, int end)
        {
            for (int blk = start; blk < end; blk++)
            {
                float* src = X + (long)blk * MR * K, dst = Dst + (long)blk * MR * K;
                int rows = Math.Min(MR, M - blk * MR), k = 0;
                if (rows == MR && Avx.IsSupported)
                    for (; k + 8 <= K; k += 8)
                        Transpose8x8(src + k, K, dst + (long)k * MR, MR);
                for (; k < K; k++)
                    for (int i = 0; i < MR; i++)
                        dst[(long)k * MR + i] = i < rows ? src[(long)i * K + k] : 0f;
            }
        }
    }

    /// <summary>dst[j·ldd + i] = src[i·lds + j] for i, j &lt; 8 (AVX).</summary>
    internal static void Transpose8x8(float* src, int lds, float* dst, int ldd)
    {
        var r0 = Vector256.Load(src); var r1 = Vector256.Load(src + lds);
        var r2 = Vector256.Load(src + 2 * lds); var r3 = Vector256.Load(src + 3 * lds);
        var r4 = Vector256.Load(src + 4 * lds); var r5 = Vector256.Load(src + 5 * lds);
        var r6 = Vector256.Load(src + 6 * lds); var r7 = Vector256.Load(src + 7 * lds);
        // Pairs of rows interleaved, then quadruples, then the 128-bit halves swapped into columns.
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Permute2x128(u0, u4, 0x20).Store(dst); Avx.Permute2x128(u1, u5, 0x20).Store(dst + ldd);
        Avx.Permute2x128(u2, u6, 0x20).Store(dst + 2 * ldd); Avx.Permute2x128(u3, u7, 0x20).Store(dst + 3 * ldd);
        Avx.Permute2x128(u0, u4, 0x31).Store(dst + 4 * ldd); Avx.Permute2x128(u1, u5, 0x31).Store(dst + 5 * ldd);
        Avx.Permute2x128(u2, u6, 0x31).Store(dst + 6 * ldd); Avx.Permute2x128(u3, u7, 0x31).Store(dst + 7 * ldd);
    }

    /// <summary>
    /// Bytes of packed X above which a product hands each thread one contiguous run of panels (<see cref="Job.MinItems"/>):
    /// half of a core's L2 on the machine of bench/results/forward-cpu.md (2 MiB); a CPU with a smaller L2 loses more
    /// to the re-reads, so the figure errs low.
    /// </summary>
    public const long XReuseBytes = 1 << 20;

    /// <summary>One product on packed X and W: work items are (panel, row chunk) pairs, panel-major, so a thread's panels stay in its caches.</summary>
    public struct Job : IRangeJob
    {
        public float* PackedX, Packed, Bias, Y;
        public int M, N, K, RowChunks;
        public Activation Act;
        public Isa Kernel;

        /// <summary>Row chunks per panel: one when there are enough panels for the threads, else enough to share out rows.</summary>
        public static int ChunksFor(int m, int n, int threads)
        {
            int panels = (n + NR - 1) / NR;
            if (panels >= 2 * threads || threads == 1)
                return 1;
            return Math.Max(1, Math.Min((m + MR - 1) / MR, 2 * threads));
        }

        /// <summary>
        /// The fewest work items per chunk of the parallel loop. A chunk walks the K blocks outermost over its panels,
        /// so it reads each K block of X once, whatever its number of panels: the more chunks, the more passes over X.
        /// While packed X stays in a core's L2 the passes are cheap and small chunks balance the threads (the default
        /// of <see cref="CpuParallel"/>); above <see cref="XReuseBytes"/> each pass comes from L3 or memory, and one
        /// chunk per thread reads X once per thread (DiT-S/2's fc2, X 3 MiB: 32.3 → 27.7 ms per forward, forward-cpu.md).
        /// </summary>
        public static int MinItems(int m, int k, int items, int threads) =>
            PackedXFloats(m, k) * sizeof(float) > XReuseBytes ? (items + threads - 1) / threads : 1;

        public readonly void Execute(int start, int end)
        {
            float* tile = stackalloc float[MR * NR];
            if (M <= MR)
            {
                // One row block (the modulation GEMVs at batch 2): nothing of X to reuse across K blocks, and the weight
                // is read once, so each panel is walked whole, K innermost: the thread's panels are one contiguous
                // stream, prefetched ahead by the kernel (Streaming). One row block is one chunk (ChunksFor), so an
                // item is a panel.
                for (int panel = start; panel < end; panel++)
                    Panel<Streaming>(panel, 0, M, 0, K, tile, null, 0);
                return;
            }
            int blocks = (M + MR - 1) / MR;
            for (int k0 = 0; k0 < K; k0 += KC)
            {
                int kc = Math.Min(KC, K - k0);
                for (int item = start; item < end; item++)
                {
                    int panel = item / RowChunks, chunk = item % RowChunks;
                    // Row ranges in multiples of MR, so that micro-tiles are full wherever possible.
                    int r0 = Math.Min(M, (int)((long)blocks * chunk / RowChunks) * MR);
                    int r1 = Math.Min(M, (int)((long)blocks * (chunk + 1) / RowChunks) * MR);
                    // The panel block this chunk reads next: the next item's at this K block, or the first item's at the
                    // next one (none after the last, or when it is this same block).
                    int nextPanel = item + 1 < end ? (item + 1) / RowChunks : k0 + KC < K ? start / RowChunks : -1;
                    int nextK = item + 1 < end ? k0 : k0 + KC;
                    float* next = nextPanel < 0 || (nextPanel == panel && nextK == k0) ? null : Packed + (long)nextPanel * K * NR + (long)nextK * NR;
                    if (r0 < r1)
                        Panel<NoPrefetch>(panel, r0, r1, k0, kc, tile, next, next is null ? 0 : Math.Min(KC, K - nextK));
                }
            }
        }

        /// <summary>
        /// The tiles of one panel's K block for rows [r0, r1), prefetching the next panel block (<paramref name="nextKc"/>
        /// rows of NR floats) into L2 a few lines per tile, so that it arrives while this block is computed instead of
        /// when its first tile asks for it: a forward reads each weight once, from memory (DiT-B/2's forward 378 → 360 ms
        /// with the chunking of <see cref="MinItems"/>, prefetching into L1 instead gained less; bench/results/forward-cpu.md).
        /// The kernels prefetch the rows of the next tile of Y as well (<see cref="PrefetchRow"/>).
        /// </summary>
        private readonly void Panel<TPrefetch>(int panel, int r0, int r1, int k0, int kc, float* tile, float* next, int nextKc)
            where TPrefetch : struct, IPanelPrefetch
        {
            const int LineFloats = 16;
            int nextLines = Sse.IsSupported ? nextKc * NR / LineFloats : 0, tiles = (r1 - r0 + MR - 1) / MR;
            int linesPerTile = (nextLines + tiles - 1) / tiles, line = 0;
            int n0 = panel * NR, cols = Math.Min(NR, N - n0);
            float* b = Packed + (long)panel * K * NR + (long)k0 * NR;
            bool accumulate = k0 > 0, last = k0 + kc == K;
            // The epilogue's bias for this panel: the bias itself, or for the last, partial panel a copy padded with zeros.
            float* bias = Bias is null ? null : Bias + n0;
            float* padded = stackalloc float[NR];
            if (bias is not null && cols < NR)
            {
                new Span<float>(padded, NR).Clear();
                new ReadOnlySpan<float>(bias, cols).CopyTo(new Span<float>(padded, NR));
                bias = padded;
            }
            for (int r = r0; r < r1; r += MR)
            {
                int rows = Math.Min(MR, r1 - r);
                for (int end = Math.Min(nextLines, line + linesPerTile); line < end; line++)
                    Sse.Prefetch1(next + (long)line * LineFloats);
                float* a = PackedX + (long)r * K + (long)k0 * MR;
                float* y = Y + (long)r * N + n0;
                if (rows == MR && cols == NR)
                {
                    float* yNext = r + 2 * MR <= r1 ? y + (long)MR * N : null;   // the next tile, if a full one follows
                    Tile<TPrefetch>(Kernel, a, b, kc, y, N, accumulate, yNext);
                    if (last)
                        Epilogue(y, N, bias, Act);
                    continue;
                }
                // A partial tile (the last rows or the last panel): through a full-size tile, the valid part in and out.
                if (accumulate)
                    for (int i = 0; i < rows; i++)
                        new ReadOnlySpan<float>(y + (long)i * N, cols).CopyTo(new Span<float>(tile + i * NR, cols));
                Tile<TPrefetch>(Kernel, a, b, kc, tile, NR, accumulate, null);
                if (last)
                    Epilogue(tile, NR, bias, Act);
                for (int i = 0; i < rows; i++)
                    new ReadOnlySpan<float>(tile + i * NR, cols).CopyTo(new Span<float>(y + (long)i * N, cols));
            }
        }
    }

    /// <summary><c>C[MR, NR] = act(C + bias)</c> on a tile still in L1, whichever micro-kernel made it: row by row, <see cref="CpuMath.BiasActivate"/>.</summary>
    private static void Epilogue(float* c, int ldc, float* bias, Activation act)
    {
        if (bias is null && act == Activation.None)
            return;
        for (int i = 0; i < MR; i++)
            CpuMath.BiasActivate(c + (long)i * ldc, bias, NR, act);
    }

    /// <summary>What a micro-kernel does for the panel rows ahead of the one it reads, once per k (a struct, so that the JIT compiles one kernel per kind).</summary>
    internal interface IPanelPrefetch
    {
        /// <summary>Called with the panel row the kernel is about to read (NR floats).</summary>
        static abstract void Ahead(float* row);
    }

    /// <summary>Nothing: the products with row blocks to reuse the panel for (the K-block loop prefetches the next block, <c>Job.Panel</c>).</summary>
    internal struct NoPrefetch : IPanelPrefetch
    {
        public static void Ahead(float* row)
        {
        }
    }

    /// <summary>
    /// A streamed panel (one row block, K innermost): the row 4 KiB ahead into L1 and the row 32 KiB ahead into L2, so
    /// that enough lines are on their way to keep memory busy; the loop's own loads leave too few in flight. DiT-B/2's
    /// modulation GEMV (2 × 4608 × 768, 14 MiB of weight), weight from memory: 0.80 → 0.54 ms per call, 18 → 26 GB/s
    /// of the machine's 31 (<c>CpuBench cold</c>). Past the end of the weight the prefetches touch nothing: a prefetch
    /// never faults.
    /// </summary>
    internal struct Streaming : IPanelPrefetch
    {
        private const int L1Floats = 1024, L2Floats = 8192;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Ahead(float* row)
        {
            if (!Sse.IsSupported)
                return;
            Sse.Prefetch0(row + L1Floats);
            Sse.Prefetch0(row + L1Floats + 16);
            Sse.Prefetch0(row + L1Floats + 32);
            Sse.Prefetch1(row + L2Floats);
            Sse.Prefetch1(row + L2Floats + 16);
            Sse.Prefetch1(row + L2Floats + 32);
        }
    }

    /// <summary>
    /// One row of a tile of Y (NR floats, three cache lines) into L1. The micro-kernels prefetch the next tile's rows
    /// one every 16 k steps while they compute this one: Y is read back at every K block after the first and a
    /// thread's part of it outgrows L2 in DiT-B/2's qkv and fc1; the eight rows prefetched at once before each tile
    /// made the kernel wait for free fill buffers instead (B/2's forward medians 333/343/347/344 → 318/326/321/322 ms,
    /// S/2's 98.4/97.3/100.5/98.4 → 96.7/90.9/98.2/98.0 ms, alternating).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchRow(float* row)
    {
        if (!Sse.IsSupported)
            return;
        Sse.Prefetch0(row);
        Sse.Prefetch0(row + 16);
        Sse.Prefetch0(row + 32);
    }

    /// <summary>
    /// C[MR, NR] (+)= A[kc][MR] · P[kc][NR], C's row stride ldc, on the given micro-kernel, prefetching the rows of the
    /// next tile of Y at <paramref name="yNext"/> (same stride) unless null.
    /// </summary>
    private static void Tile<TPrefetch>(Isa isa, float* a, float* p, int kc, float* c, int ldc, bool accumulate, float* yNext)
        where TPrefetch : struct, IPanelPrefetch
    {
        switch (isa)
        {
            case Isa.Avx512:
                Kernel8x48<TPrefetch>(a, p, kc, c, ldc, accumulate, yNext);
                break;
            case Isa.Avx2:   // the first call streams the panel rows and prefetches (all NR columns of them, and of Y's next tile)
                Kernel4x24<TPrefetch>(a, p, kc, c, ldc, accumulate, yNext);
                Kernel4x24<NoPrefetch>(a, p + 24, kc, c + 24, ldc, accumulate, null);
                Kernel4x24<NoPrefetch>(a + 4, p, kc, c + 4L * ldc, ldc, accumulate, null);
                Kernel4x24<NoPrefetch>(a + 4, p + 24, kc, c + 4L * ldc + 24, ldc, accumulate, null);
                break;
            default:
                Scalar(a, p, kc, c, ldc, accumulate);
                break;
        }
    }

    /// <summary>AVX-512: C[8, 48] (+)= A[kc][8] · P[kc][48] in 24 accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel8x48<TPrefetch>(float* a, float* p, int kc, float* c, int ldc, bool accumulate, float* yNext)
        where TPrefetch : struct, IPanelPrefetch
    {
        Vector512<float> c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32;
        Vector512<float> c40, c41, c42, c50, c51, c52, c60, c61, c62, c70, c71, c72;
        float* cr = c;
        if (accumulate)
        {
            c00 = Vector512.Load(cr); c01 = Vector512.Load(cr + 16); c02 = Vector512.Load(cr + 32); cr += ldc;
            c10 = Vector512.Load(cr); c11 = Vector512.Load(cr + 16); c12 = Vector512.Load(cr + 32); cr += ldc;
            c20 = Vector512.Load(cr); c21 = Vector512.Load(cr + 16); c22 = Vector512.Load(cr + 32); cr += ldc;
            c30 = Vector512.Load(cr); c31 = Vector512.Load(cr + 16); c32 = Vector512.Load(cr + 32); cr += ldc;
            c40 = Vector512.Load(cr); c41 = Vector512.Load(cr + 16); c42 = Vector512.Load(cr + 32); cr += ldc;
            c50 = Vector512.Load(cr); c51 = Vector512.Load(cr + 16); c52 = Vector512.Load(cr + 32); cr += ldc;
            c60 = Vector512.Load(cr); c61 = Vector512.Load(cr + 16); c62 = Vector512.Load(cr + 32); cr += ldc;
            c70 = Vector512.Load(cr); c71 = Vector512.Load(cr + 16); c72 = Vector512.Load(cr + 32);
        }
        else
        {
            c00 = c01 = c02 = c10 = c11 = c12 = c20 = c21 = c22 = c30 = c31 = c32 = Vector512<float>.Zero;
            c40 = c41 = c42 = c50 = c51 = c52 = c60 = c61 = c62 = c70 = c71 = c72 = Vector512<float>.Zero;
        }
        int k = 0;
        for (float* end = a + (long)kc * MR; a < end; a += MR, p += NR, k++)
        {
            TPrefetch.Ahead(p);
            if ((k & 15) == 0 && yNext != null)
                PrefetchRow(yNext + (long)(k >> 4) * ldc);
            var b0 = Vector512.Load(p);
            var b1 = Vector512.Load(p + 16);
            var b2 = Vector512.Load(p + 32);
            var x = Vector512.Create(a[0]);
            c00 = Avx512F.FusedMultiplyAdd(x, b0, c00); c01 = Avx512F.FusedMultiplyAdd(x, b1, c01); c02 = Avx512F.FusedMultiplyAdd(x, b2, c02);
            x = Vector512.Create(a[1]);
            c10 = Avx512F.FusedMultiplyAdd(x, b0, c10); c11 = Avx512F.FusedMultiplyAdd(x, b1, c11); c12 = Avx512F.FusedMultiplyAdd(x, b2, c12);
            x = Vector512.Create(a[2]);
            c20 = Avx512F.FusedMultiplyAdd(x, b0, c20); c21 = Avx512F.FusedMultiplyAdd(x, b1, c21); c22 = Avx512F.FusedMultiplyAdd(x, b2, c22);
            x = Vector512.Create(a[3]);
            c30 = Avx512F.FusedMultiplyAdd(x, b0, c30); c31 = Avx512F.FusedMultiplyAdd(x, b1, c31); c32 = Avx512F.FusedMultiplyAdd(x, b2, c32);
            x = Vector512.Create(a[4]);
            c40 = Avx512F.FusedMultiplyAdd(x, b0, c40); c41 = Avx512F.FusedMultiplyAdd(x, b1, c41); c42 = Avx512F.FusedMultiplyAdd(x, b2, c42);
            x = Vector512.Create(a[5]);
            c50 = Avx512F.FusedMultiplyAdd(x, b0, c50); c51 = Avx512F.FusedMultiplyAdd(x, b1, c51); c52 = Avx512F.FusedMultiplyAdd(x, b2, c52);
            x = Vector512.Create(a[6]);
            c60 = Avx512F.FusedMultiplyAdd(x, b0, c60); c61 = Avx512F.FusedMultiplyAdd(x, b1, c61); c62 = Avx512F.FusedMultiplyAdd(x, b2, c62);
            x = Vector512.Create(a[7]);
            c70 = Avx512F.FusedMultiplyAdd(x, b0, c70); c71 = Avx512F.FusedMultiplyAdd(x, b1, c71); c72 = Avx512F.FusedMultiplyAdd(x, b2, c72);
        }
        cr = c;
        c00.Store(cr); c01.Store(cr + 16); c02.Store(cr + 32); cr += ldc;
        c10.Store(cr); c11.Store(cr + 16); c12.Store(cr + 32); cr += ldc;
        c20.Store(cr); c21.Store(cr + 16); c22.Store(cr + 32); cr += ldc;
        c30.Store(cr); c31.Store(cr + 16); c32.Store(cr + 32); cr += ldc;
        c40.Store(cr); c41.Store(cr + 16); c42.Store(cr + 32); cr += ldc;
        c50.Store(cr); c51.Store(cr + 16); c52.Store(cr + 32); cr += ldc;
        c60.Store(cr); c61.Store(cr + 16); c62.Store(cr + 32); cr += ldc;
        c70.Store(cr); c71.Store(cr + 16); c72.Store(cr + 32);
    }

    /// <summary>AVX2: C[4, 24] (+)= A[kc][4 of MR] · P[kc][24 of NR] in 12 accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel4x24<TPrefetch>(float* a, float* p, int kc, float* c, int ldc, bool accumulate, float* yNext)
        where TPrefetch : struct, IPanelPrefetch
    {
        Vector256<float> c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32;
        float* c1 = c + ldc, c2 = c1 + ldc, c3 = c2 + ldc;
        if (accumulate)
        {
            c00 = Vector256.Load(c); c01 = Vector256.Load(c + 8); c02 = Vector256.Load(c + 16);
            c10 = Vector256.Load(c1); c11 = Vector256.Load(c1 + 8); c12 = Vector256.Load(c1 + 16);
            c20 = Vector256.Load(c2); c21 = Vector256.Load(c2 + 8); c22 = Vector256.Load(c2 + 16);
            c30 = Vector256.Load(c3); c31 = Vector256.Load(c3 + 8); c32 = Vector256.Load(c3 + 16);
        }
        else
            c00 = c01 = c02 = c10 = c11 = c12 = c20 = c21 = c22 = c30 = c31 = c32 = Vector256<float>.Zero;
        int k = 0;
        for (float* end = a + (long)kc * MR; a < end; a += MR, p += NR, k++)
        {
            TPrefetch.Ahead(p);
            if ((k & 15) == 0 && yNext != null)
                PrefetchRow(yNext + (long)(k >> 4) * ldc);
            var b0 = Vector256.Load(p);
            var b1 = Vector256.Load(p + 8);
            var b2 = Vector256.Load(p + 16);
            var x = Vector256.Create(a[0]);
            c00 = Fma.MultiplyAdd(x, b0, c00); c01 = Fma.MultiplyAdd(x, b1, c01); c02 = Fma.MultiplyAdd(x, b2, c02);
            x = Vector256.Create(a[1]);
            c10 = Fma.MultiplyAdd(x, b0, c10); c11 = Fma.MultiplyAdd(x, b1, c11); c12 = Fma.MultiplyAdd(x, b2, c12);
            x = Vector256.Create(a[2]);
            c20 = Fma.MultiplyAdd(x, b0, c20); c21 = Fma.MultiplyAdd(x, b1, c21); c22 = Fma.MultiplyAdd(x, b2, c22);
            x = Vector256.Create(a[3]);
            c30 = Fma.MultiplyAdd(x, b0, c30); c31 = Fma.MultiplyAdd(x, b1, c31); c32 = Fma.MultiplyAdd(x, b2, c32);
        }
        c00.Store(c); c01.Store(c + 8); c02.Store(c + 16);
        c10.Store(c1); c11.Store(c1 + 8); c12.Store(c1 + 16);
        c20.Store(c2); c21.Store(c2 + 8); c22.Store(c2 + 16);
        c30.Store(c3); c31.Store(c3 + 8); c32.Store(c3 + 16);
    }

    /// <summary>Without wide vectors: C[MR, NR] (+)= A[kc][MR] · P[kc][NR], one fused multiply-add per term.</summary>
    private static void Scalar(float* a, float* p, int kc, float* c, int ldc, bool accumulate)
    {
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
            {
                float acc = accumulate ? c[(long)i * ldc + j] : 0f;
                for (int k = 0; k < kc; k++)
                    acc = MathF.FusedMultiplyAdd(a[k * MR + i], p[(long)k * NR + j], acc);
                c[(long)i * ldc + j] = acc;
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

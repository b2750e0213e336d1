using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using BlockDance.Runtime;
using Tensor = BlockDance.Runtime.Tensor;

namespace BlockDance.Kernels.Cpu;

/// <summary>
/// The managed CPU device: float32 math in C#, matrix products in its own packed-weight GEMM (<see cref="CpuGemm"/>;
/// OpenBLAS <c>cblas_sgemm</c> when <see cref="PackWeights"/> is off), loops spread over the cores by
/// <see cref="CpuParallel"/>. It is the reference every other backend is compared with, so each op is written to follow
/// the PyTorch float32 formula of the model specification. Ops allocate no managed memory in steady state: native
/// scratch (attention, the packed form of owned weights) grows (rarely) to the largest size seen and is then reused,
/// and a checkpoint weight's packed copy is made once, on its first use.
/// </summary>
public sealed unsafe partial class CpuOps : IOps
{
    /// <summary>
    /// Row-wise loops (bias and activation, norms, residuals) over fewer floats than this run on the calling thread:
    /// they are memory-bound, and handing half of a small one to another thread costs a few microseconds (5 µs while
    /// the pool thread still spins, `CpuBench regions`). Since the pool thread spins through the gaps between loops
    /// (<see cref="CpuParallel"/>), DiT-S/2's 512 × 384 floats gain from two threads too: per forward LayerNormModulate
    /// 2.01 → 1.22 ms, GatedResidualAdd 1.21 → 0.71 ms, the forward's medians 98.1/95.0/97.4/95.2 → 93.2/92.4/96.2/95.3 ms
    /// (alternating; the threshold was 256 Ki floats while a sleeping pool thread took 30 µs to wake). DiT-B/2, 512 × 768:
    /// LayerNormModulate 0.174 → 0.099 ms and GatedResidualAdd 0.115 → 0.064 ms per call on 2 threads.
    /// </summary>
    private const int InlineFloats = 1 << 16;

    /// <summary>Floats of the smallest part of a row-wise loop that does run in parallel.</summary>
    private const int PartFloats = 1 << 13;

    /// <summary>
    /// The fewest rows per part for <see cref="CpuParallel.For{T}"/> over <paramref name="rows"/> rows of
    /// <paramref name="rowLength"/> floats: all of them (one part, on the calling thread) below <see cref="InlineFloats"/>,
    /// else parts of at least <see cref="PartFloats"/>.
    /// </summary>
    private static int MinRows(int rows, int rowLength) =>
        (long)rows * rowLength < InlineFloats ? Math.Max(1, rows) : Math.Max(1, PartFloats / Math.Max(1, rowLength));

    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<Tensor, CpuGemm.PackedWeight> _packed = new();
    private readonly object _packLock = new();
    private long _packedFloats, _packTicks;
    private float* _packScratch;  // the packed form of an owned weight, remade on every call
    private long _packScratchFloats;
    private float* _packX;       // the current product's input, packed into blocks of CpuGemm.MR rows
    private long _packXFloats;
    private float* _scratch;     // attention: keys transposed and values packed, grown to the largest 2·B·T·D seen
    private long _scratchFloats;

    /// <param name="threads">
    /// Threads for the managed loops and OpenBLAS, 0 for every core. The setting is process-wide (OpenBLAS has one
    /// thread pool per process), so the last CpuOps created decides.
    /// </param>
    public CpuOps(int threads = 0)
    {
        OpenBlas.EnsureLoaded();
        int n = threads > 0 ? threads : Environment.ProcessorCount;
        CpuParallel.ThreadCount = n;
        OpenBlas.openblas_set_num_threads(n);
        PackWeights = Environment.GetEnvironmentVariable("BLOCKDANCE_CPU_GEMM") switch
        {
            null or "" or "packed" => true,
            "openblas" => false,
            string other => throw new ArgumentException($"BLOCKDANCE_CPU_GEMM='{other}': expected packed or openblas"),
        };
        var isa = Environment.GetEnvironmentVariable("BLOCKDANCE_CPU_ISA") switch
        {
            null or "" => CpuGemm.Best,
            "avx512" => CpuGemm.Isa.Avx512,
            "avx2" => CpuGemm.Isa.Avx2,
            "scalar" => CpuGemm.Isa.Scalar,
            string other => throw new ArgumentException($"BLOCKDANCE_CPU_ISA='{other}': expected avx512, avx2 or scalar"),
        };
        if (!CpuGemm.Supported(isa))
            throw new ArgumentException($"BLOCKDANCE_CPU_ISA={isa}: this CPU runs at most {CpuGemm.Best}");
        GemmKernel = isa;
    }

    /// <summary>
    /// Whether <see cref="Linear"/> runs through <see cref="CpuGemm"/> (default) instead of OpenBLAS <c>cblas_sgemm</c>.
    /// Weights that do not own their memory (views of a checkpoint's read-only mapping) are packed once, on first use,
    /// and the copy is kept with the tensor object: such a weight's values must not change while its tensor object
    /// lives. Weights that own their memory are packed into scratch on every call. The environment variable
    /// <c>BLOCKDANCE_CPU_GEMM=openblas</c> turns it off for a whole process.
    /// </summary>
    public bool PackWeights { get; set; }

    /// <summary>
    /// The micro-kernel of the packed GEMM: the widest this CPU runs, or the one named by <c>BLOCKDANCE_CPU_ISA</c>
    /// (avx512, avx2, scalar); tests set it to cover every path. All give the same bits.
    /// </summary>
    internal CpuGemm.Isa GemmKernel
    {
        get;
        set => field = CpuGemm.Supported(value) ? value : throw new ArgumentException($"micro-kernel {value}: this CPU runs at most {CpuGemm.Best}");
    }

    /// <summary>Bytes of the packed weight copies made so far (native memory, about the size of the weights used).</summary>
    public long PackedWeightBytes => Interlocked.Read(ref _packedFloats) * sizeof(float);

    /// <summary>Milliseconds spent packing weights so far (the one-time cost of the packed copies, paid on first use).</summary>
    public double PackMilliseconds => _packTicks * 1000.0 / System.Diagnostics.Stopwatch.Frequency;

    /// <inheritdoc/>
    public Device Device => CpuDevice.Instance;
    /// <inheritdoc/>
    public DType ActivationType => DType.F32;

    /// <summary>Bytes of the scratch: attention (keys transposed, values packed), the packed form of owned weights and of the GEMM's input.</summary>
    public long ScratchBytes => (_scratchFloats + _packScratchFloats + _packXFloats) * sizeof(float);

    /// <summary>Threads the managed loops use.</summary>
    public static int Threads => CpuParallel.ThreadCount;

    // ---------------------------------------------------------------------------------------------------------------
    // Linear: y = act(x · wᵀ + b)

    /// <inheritdoc/>
    public void Linear(Tensor x, Tensor w, Tensor? b, Tensor y, Activation act = Activation.None)
    {
        Check.F32(x, w, y);
        if (b is not null)
            Check.F32(b);
        var (m, n, k) = Check.Linear(x, w, b, y);
        if (m == 0 || n == 0)
            return;
        if (PackWeights && k > 0)
        {
            // A weight that does not own its memory (a checkpoint view) is packed once and kept; an owned one (a test's
            // operand, a converted or concatenated weight) is packed into scratch on every call: the same kernel either way.
            float* panels;
            if (w.OwnsMemory)
            {
                Grow(ref _packScratch, ref _packScratchFloats, CpuGemm.PackedFloats(n, k));
                CpuGemm.Pack(F(w), n, k, _packScratch);
                panels = _packScratch;
            }
            else
                panels = Packed(w, n, k).Data;
            Grow(ref _packX, ref _packXFloats, CpuGemm.PackedXFloats(m, k));
            var packX = new CpuGemm.PackXJob { X = F(x), Dst = _packX, M = m, K = k };
            CpuParallel.For((m + CpuGemm.MR - 1) / CpuGemm.MR, ref packX, minChunk: 4);
            int chunks = CpuGemm.Job.ChunksFor(m, n, CpuParallel.ThreadCount);
            var gemm = new CpuGemm.Job
            {
                PackedX = _packX, Packed = panels, Bias = b is null ? null : F(b), Y = F(y), M = m, N = n, K = k,
                RowChunks = chunks, Act = act, Kernel = GemmKernel,
            };
            int items = (n + CpuGemm.NR - 1) / CpuGemm.NR * chunks;
            CpuParallel.For(items, ref gemm, CpuGemm.Job.MinItems(m, k, items, CpuParallel.ThreadCount));
            return;
        }
        OpenBlas.cblas_sgemm(OpenBlas.RowMajor, OpenBlas.NoTrans, OpenBlas.Trans, m, n, k,
            1f, F(x), k, F(w), k, 0f, F(y), n);
        if (b is null && act == Activation.None)
            return;
        var job = new BiasActivationJob { Y = F(y), Bias = b is null ? null : F(b), N = n, Act = act };
        CpuParallel.For(m, ref job, minChunk: MinRows(m, n));
    }

    private CpuGemm.PackedWeight Packed(Tensor w, int n, int k)
    {
        if (_packed.TryGetValue(w, out var p))
            return p;
        lock (_packLock)
        {
            if (!_packed.TryGetValue(w, out p))
            {
                long start = System.Diagnostics.Stopwatch.GetTimestamp();
                p = new CpuGemm.PackedWeight(F(w), n, k);
                _packTicks += System.Diagnostics.Stopwatch.GetTimestamp() - start;
                _packed.Add(w, p);
                Interlocked.Add(ref _packedFloats, p.Floats);
            }
            return p;
        }
    }

    private struct BiasActivationJob : IRangeJob
    {
        public float* Y, Bias;
        public int N;
        public Activation Act;

        public readonly void Execute(int start, int end)
        {
            for (int row = start; row < end; row++)
                CpuMath.BiasActivate(Y + (long)row * N, Bias, N, Act);
        }
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Elementwise

    /// <inheritdoc/>
    public void Silu(Tensor x, Tensor y)
    {
        Check.F32(x, y);
        Check.SameCount(x, y, "Silu");
        var job = new SiluJob { X = F(x), Y = F(y) };
        CpuParallel.For(checked((int)x.Count), ref job, minChunk: 4096);
    }

    private struct SiluJob : IRangeJob
    {
        public float* X, Y;

        public readonly void Execute(int start, int end)
        {
            new ReadOnlySpan<float>(X + start, end - start).CopyTo(new Span<float>(Y + start, end - start));
            CpuMath.BiasActivate(Y + start, null, end - start, Activation.Silu);
        }
    }

    /// <inheritdoc/>
    public void Add(Tensor a, Tensor b, Tensor y)
    {
        Check.F32(a, b, y);
        Check.SameCount(a, b, "Add");
        Check.SameCount(a, y, "Add");
        TensorPrimitives.Add(a.AsSpan<float>(), b.AsSpan<float>(), y.AsSpan<float>());
    }

    // ---------------------------------------------------------------------------------------------------------------
    // LayerNorm + adaLN modulation, gated residual

    /// <inheritdoc/>
    public void LayerNormModulate(Tensor x, Tensor mod, int shiftChunk, int scaleChunk, float eps, Tensor y)
    {
        Check.F32(x, mod, y);
        var (batch, tokens, d) = Check.Btd(x, "LayerNormModulate");
        Check.SameCount(x, y, "LayerNormModulate");
        int chunks = Check.Modulation(mod, batch, d, "LayerNormModulate", shiftChunk, scaleChunk);
        var job = new LayerNormJob
        {
            X = F(x), Y = F(y), Mod = F(mod), Tokens = tokens, D = d, ModStride = chunks * d,
            Shift = shiftChunk * d, Scale = scaleChunk * d, Eps = eps,
        };
        CpuParallel.For(batch * tokens, ref job, minChunk: MinRows(batch * tokens, d));
    }

    private struct LayerNormJob : IRangeJob
    {
        public float* X, Y, Mod;
        public int Tokens, D, ModStride, Shift, Scale;
        public float Eps;

        public readonly void Execute(int start, int end)
        {
            for (int row = start; row < end; row++)
            {
                float* x = X + (long)row * D, y = Y + (long)row * D;
                float* m = Mod + (long)(row / Tokens) * ModStride;
                // Two passes, as PyTorch: the mean, then the mean of squared deviations (biased variance).
                float mean = TensorPrimitives.Sum(new ReadOnlySpan<float>(x, D)) / D;
                float rstd = 1f / MathF.Sqrt(SquaredDeviations(x, D, mean) / D + Eps);
                Modulate(x, y, D, mean, rstd, m + Scale, m + Shift);
            }
        }

        /// <summary><c>y = (x − mean)·rstd·(1 + scale) + shift</c>, the same operations at every width (16, 8, 1 lanes).</summary>
        private static void Modulate(float* x, float* y, int d, float mean, float rstd, float* scale, float* shift)
        {
            int i = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                var vm = Vector512.Create(mean);
                var vr = Vector512.Create(rstd);
                for (; i + 16 <= d; i += 16)
                    ((Vector512.Load(x + i) - vm) * vr * (Vector512<float>.One + Vector512.Load(scale + i)) + Vector512.Load(shift + i)).Store(y + i);
            }
            if (Vector256.IsHardwareAccelerated)
            {
                var vm = Vector256.Create(mean);
                var vr = Vector256.Create(rstd);
                for (; i + 8 <= d; i += 8)
                    ((Vector256.Load(x + i) - vm) * vr * (Vector256<float>.One + Vector256.Load(scale + i)) + Vector256.Load(shift + i)).Store(y + i);
            }
            for (; i < d; i++)
                y[i] = (x[i] - mean) * rstd * (1f + scale[i]) + shift[i];
        }

        /// <summary>
        /// Σ (x − mean)² over a row (in L1 by now), in four independent accumulators (16 lanes, or 8 without AVX-512) so that the adds do
        /// not wait on one another (one accumulator made the row's variance latency-bound: DiT-B/2, 1024 rows of 768,
        /// 0.25 ms per call).
        /// </summary>
        private static float SquaredDeviations(float* x, int d, float mean)
        {
            int i = 0;
            float sum = 0;
            if (Vector512.IsHardwareAccelerated && d >= 64)
            {
                var vm = Vector512.Create(mean);
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (; i + 64 <= d; i += 64)
                {
                    var c0 = Vector512.Load(x + i) - vm; var c1 = Vector512.Load(x + i + 16) - vm;
                    var c2 = Vector512.Load(x + i + 32) - vm; var c3 = Vector512.Load(x + i + 48) - vm;
                    a0 += c0 * c0; a1 += c1 * c1; a2 += c2 * c2; a3 += c3 * c3;
                }
                sum = Vector512.Sum((a0 + a1) + (a2 + a3));
            }
            else if (Vector256.IsHardwareAccelerated && d >= 32)
            {
                var vm = Vector256.Create(mean);
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (; i + 32 <= d; i += 32)
                {
                    var c0 = Vector256.Load(x + i) - vm; var c1 = Vector256.Load(x + i + 8) - vm;
                    var c2 = Vector256.Load(x + i + 16) - vm; var c3 = Vector256.Load(x + i + 24) - vm;
                    a0 += c0 * c0; a1 += c1 * c1; a2 += c2 * c2; a3 += c3 * c3;
                }
                sum = Vector256.Sum((a0 + a1) + (a2 + a3));
            }
            for (; i < d; i++)
                sum += (x[i] - mean) * (x[i] - mean);
            return sum;
        }
    }

    /// <inheritdoc/>
    public void GatedResidualAdd(Tensor x, Tensor h, Tensor mod, int gateChunk)
    {
        Check.F32(x, h, mod);
        var (batch, tokens, d) = Check.Btd(x, "GatedResidualAdd");
        Check.SameCount(x, h, "GatedResidualAdd");
        int chunks = Check.Modulation(mod, batch, d, "GatedResidualAdd", gateChunk, gateChunk);
        var job = new GatedAddJob { X = F(x), H = F(h), Mod = F(mod), Tokens = tokens, D = d, ModStride = chunks * d, Gate = gateChunk * d };
        CpuParallel.For(batch * tokens, ref job, minChunk: MinRows(batch * tokens, d));
    }

    private struct GatedAddJob : IRangeJob
    {
        public float* X, H, Mod;
        public int Tokens, D, ModStride, Gate;

        public readonly void Execute(int start, int end)
        {
            for (int row = start; row < end; row++)
            {
                var x = new Span<float>(X + (long)row * D, D);
                var gate = new ReadOnlySpan<float>(Mod + (long)(row / Tokens) * ModStride + Gate, D);
                TensorPrimitives.FusedMultiplyAdd(gate, new ReadOnlySpan<float>(H + (long)row * D, D), x, x);
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Attention

    /// <inheritdoc/>
    public void Attention(Tensor qkv, int heads, Tensor y)
    {
        Check.F32(qkv, y);
        var (batch, tokens, d, dh) = Check.Attention(qkv, heads, y);
        // Keys transposed [B·H, Dh, T] and values packed [B·H, T, Dh]: the only scratch, the size of K and V.
        EnsureScratch(CpuAttention.ScratchFloats(batch, tokens, d));
        float* kt = _scratch, vp = _scratch + (long)batch * tokens * d;
        var pack = new CpuAttention.PackJob { Qkv = F(qkv), Kt = kt, Vp = vp, T = tokens, D = d, Dh = dh, Heads = heads };
        CpuParallel.For(batch * heads, ref pack);
        int rowBlocks = (tokens + CpuAttention.RowBlock - 1) / CpuAttention.RowBlock;
        var rows = new CpuAttention.RowsJob
        {
            Qkv = F(qkv), Kt = kt, Vp = vp, Y = F(y), T = tokens, D = d, Dh = dh, Heads = heads, RowBlocks = rowBlocks,
            Scale = CpuMath.Log2E / MathF.Sqrt(dh),   // scores in base 2: the softmax takes 2^x
        };
        CpuParallel.For(batch * heads * rowBlocks, ref rows);
    }

    private void EnsureScratch(long floats) => Grow(ref _scratch, ref _scratchFloats, floats);

    /// <summary>Grows a 64-byte aligned native buffer to at least <paramref name="floats"/> (its old contents are dropped).</summary>
    private static void Grow(ref float* buffer, ref long have, long floats)
    {
        if (have >= floats)
            return;
        System.Runtime.InteropServices.NativeMemory.AlignedFree(buffer);
        buffer = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
        have = floats;
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Patches and embeddings

    /// <inheritdoc/>
    public void Patchify(Tensor image, int patch, Tensor cols)
    {
        Check.F32(image, cols);
        var (batch, c, h, w, _, gw, tokens, k) = Check.Patchify(image, patch, cols);
        float* src = F(image), dst = F(cols);
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < tokens; t++)
            {
                int r = t / gw, col = t % gw;
                float* o = dst + ((long)b * tokens + t) * k;
                for (int ch = 0; ch < c; ch++)
                    for (int i = 0; i < patch; i++)
                    {
                        float* s = src + (((long)b * c + ch) * h + r * patch + i) * w + col * patch;
                        for (int j = 0; j < patch; j++)
                            o[(ch * patch + i) * patch + j] = s[j];
                    }
            }
    }

    /// <inheritdoc/>
    public void AddPositionEmbedding(Tensor x, Tensor pos)
    {
        Check.F32(x, pos);
        var (batch, tokens, d) = Check.PositionEmbedding(x, pos);
        var p = pos.AsSpan<float>();
        for (int b = 0; b < batch; b++)
        {
            var xb = new Span<float>(F(x) + (long)b * tokens * d, tokens * d);
            TensorPrimitives.Add(xb, p, xb);
        }
    }

    /// <inheritdoc/>
    public void Unpatchify(Tensor x, int patch, Tensor image)
    {
        Check.F32(x, image);
        var (batch, c, h, w, _, gw, tokens, k) = Check.Unpatchify(x, patch, image);
        float* src = F(x), dst = F(image);
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < tokens; t++)
            {
                int hi = t / gw, wi = t % gw;
                float* s = src + ((long)b * tokens + t) * k;
                for (int i = 0; i < patch; i++)
                    for (int j = 0; j < patch; j++)
                        for (int ch = 0; ch < c; ch++)
                            dst[(((long)b * c + ch) * h + hi * patch + i) * w + wi * patch + j] = s[(i * patch + j) * c + ch];
            }
    }

    /// <inheritdoc/>
    public void SwapFrameTokenAxes(Tensor x, Tensor y)
    {
        Check.F32(x, y);
        var (batch, p, q, d) = Check.SwapFrameTokenAxes(x, y);
        float* src = F(x), dst = F(y);
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < p; i++)
                for (int j = 0; j < q; j++)
                    new ReadOnlySpan<float>(src + (((long)b * p + i) * q + j) * d, d)
                        .CopyTo(new Span<float>(dst + (((long)b * q + j) * p + i) * d, d));
    }

    /// <inheritdoc/>
    public void TimestepEmbedding(Tensor t, int frequencyShift, Tensor y)
    {
        Check.F32(t, y);
        var (batch, half) = Check.TimestepEmbedding(t, frequencyShift, y);
        int dim = 2 * half;
        float* ts = F(t), o = F(y);
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < half; i++)
            {
                float arg = ts[b] * TimestepFrequency(i, half, frequencyShift);
                o[(long)b * dim + i] = MathF.Cos(arg);
                o[(long)b * dim + half + i] = MathF.Sin(arg);
            }
    }

    /// <summary>
    /// <c>exp(−ln(10⁴)·i/(half − shift))</c> evaluated like PyTorch's float32 expression
    /// <c>exp(-math.log(10000) * arange(half, dtype=float32) / (half - shift))</c>: the product and the division are float32.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float TimestepFrequency(int i, int half, int shift)
    {
        const float NegLogMaxPeriod = -9.210340371976184f; // (float)-ln(10000)
        return MathF.Exp(NegLogMaxPeriod * i / (half - shift));
    }

    /// <inheritdoc/>
    public void EmbeddingLookup(Tensor table, Tensor ids, Tensor y)
    {
        Check.F32(table, y);
        var (vocab, d, batch) = Check.EmbeddingLookup(table, ids, y);
        var idSpan = ids.AsSpan<int>();
        for (int b = 0; b < batch; b++)
        {
            int id = idSpan[b];
            if ((uint)id >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(ids), $"EmbeddingLookup: id {id} at {b} is outside [0, {vocab})");
            new ReadOnlySpan<float>(F(table) + (long)id * d, d).CopyTo(new Span<float>(F(y) + (long)b * d, d));
        }
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Sampling

    /// <inheritdoc/>
    public void GuidanceCombine(Tensor output, int guidedChannels, float scale, Tensor y)
    {
        Check.F32(output, y);
        var (n, c, plane) = Check.GuidanceCombine(output, guidedChannels, y);
        float* o = F(output), r = F(y);
        long itemSize = (long)c * plane;
        for (int i = 0; i < n; i++)
        {
            float* cond = o + i * itemSize, uncond = o + (n + i) * itemSize, dst = r + i * itemSize;
            long guided = (long)guidedChannels * plane;
            for (long e = 0; e < guided; e++)
                dst[e] = uncond[e] + scale * (cond[e] - uncond[e]);
            for (long e = guided; e < itemSize; e++)
                dst[e] = cond[e];
        }
    }

    /// <inheritdoc/>
    public void RelativeL1(Tensor x, Tensor reference, Tensor result, float weight, bool accumulate)
    {
        Check.F32(x, reference, result);
        var (batch, perItem) = Check.RelativeL1(x, reference, result);
        float* xs = F(x), rs = F(reference), y = F(result);
        for (int b = 0; b < batch; b++)
        {
            double diff = 0, norm = 0;
            float* xi = xs + (long)b * perItem, ri = rs + (long)b * perItem;
            for (int j = 0; j < perItem; j++)
            {
                diff += Math.Abs(xi[j] - ri[j]);
                norm += Math.Abs(ri[j]);
            }
            float ratio = norm > 0 ? (float)(diff / norm) : diff > 0 ? float.PositiveInfinity : 0f;
            y[b] = (accumulate ? y[b] : 0f) + weight * ratio;
        }
    }

    /// <inheritdoc/>
    public void DdimStep(Tensor x, Tensor modelOutput, float a, float b, float c, float d, float e, bool rederiveEps, Tensor? noise)
    {
        Check.F32(x, modelOutput);
        var (n, channels, plane) = Check.SamplerShapes(x, modelOutput, noise, 1, "DdimStep");
        float* xs = F(x), o = F(modelOutput), z = noise is null ? null : F(noise);
        if (z is null && e != 0)
            throw new ArgumentException("DdimStep: noise is required when the noise coefficient is not zero");
        long item = (long)channels * plane, outItem = (long)modelOutput.Dim(1) * plane;
        for (int i = 0; i < n; i++)
            for (long j = 0; j < item; j++)
            {
                long at = i * item + j;
                float xv = xs[at], eps = o[i * outItem + j];
                float zv = z is null ? 0f : z[at];
                if (rederiveEps)
                {
                    float x0 = a * xv - b * eps;
                    float eps2 = (a * xv - x0) / b;
                    xs[at] = x0 * c + d * eps2 + e * zv;
                }
                else
                {
                    float x0 = (xv - b * eps) / a;
                    xs[at] = c * x0 + d * eps + e * zv;
                }
            }
    }

    /// <inheritdoc/>
    public void AncestralStep(Tensor x, Tensor modelOutput, float a, float b, float c1, float c2, float minLog, float maxLog, float nonzero, Tensor? noise)
    {
        Check.F32(x, modelOutput);
        var (n, channels, plane) = Check.SamplerShapes(x, modelOutput, noise, 2, "AncestralStep", exactChannels: true);
        if (noise is null && nonzero != 0)
            throw new ArgumentException("AncestralStep: noise is required except at the last step");
        float* xs = F(x), o = F(modelOutput), z = noise is null ? null : F(noise);
        long item = (long)channels * plane, outItem = 2 * item;
        for (int i = 0; i < n; i++)
            for (long e = 0; e < item; e++)
            {
                long at = i * item + e;
                float xv = xs[at], eps = o[i * outItem + e], v = o[i * outItem + item + e];
                float x0 = a * xv - b * eps;
                float mean = c1 * x0 + c2 * xv;
                float frac = (v + 1f) / 2f;
                float logVar = frac * maxLog + (1f - frac) * minLog;
                xs[at] = z is null ? mean : mean + nonzero * MathF.Exp(0.5f * logVar) * z[at];
            }
    }

    /// <inheritdoc/>
    public void RandomNormal(Tensor y, ulong seed, ulong offset)
    {
        Check.F32(y);
        var job = new RandomJob { Y = F(y), Seed = seed, Offset = offset };
        CpuParallel.For(checked((int)y.Count), ref job, minChunk: 4096);
    }

    private struct RandomJob : IRangeJob
    {
        public float* Y;
        public ulong Seed, Offset;

        public readonly void Execute(int start, int end)
        {
            for (int i = start; i < end; i++)
                Y[i] = Philox.Normal(Seed, Offset + (ulong)i);
        }
    }

    private static float* F(Tensor t) => (float*)t.Address;

    /// <summary>Frees the attention scratch. The ops can be used again afterwards (the scratch grows back on demand).</summary>
    public void Dispose()
    {
        foreach (var (_, p) in _packed)
            p.Dispose();
        _packed.Clear();
        System.Runtime.InteropServices.NativeMemory.AlignedFree(_packScratch);
        _packScratch = null;
        _packScratchFloats = 0;
        System.Runtime.InteropServices.NativeMemory.AlignedFree(_packX);
        _packX = null;
        _packXFloats = 0;
        System.Runtime.InteropServices.NativeMemory.AlignedFree(_scratch);
        _scratch = null;
        _scratchFloats = 0;
    }
}

using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using BlockDance.Runtime;
using Tensor = BlockDance.Runtime.Tensor;

namespace BlockDance.Kernels.Cpu;

/// <summary>
/// The managed CPU device: float32 math in C#, matrix products in OpenBLAS <c>cblas_sgemm</c>, loops spread over the
/// cores by <see cref="CpuParallel"/>. It is the reference every other backend is compared with, so each op is written
/// to follow the PyTorch float32 formula of the model specification. Ops allocate nothing except the attention score
/// scratch, which grows (rarely) to the largest batch × sequence seen and is then reused.
/// </summary>
public sealed unsafe partial class CpuOps : IOps
{
    /// <summary>
    /// Elementwise and row-wise loops (bias, activation, norms, residuals) smaller than this many floats run on the
    /// calling thread: they are memory-bound, and handing half of one to a sleeping pool thread right after a matrix
    /// product costs more than it saves (DiT-S/2, 512 × 384 floats: LayerNormModulate 0.25 → 0.04 ms per call,
    /// GatedResidualAdd 0.25 → 0.02 ms; bench/results/forward-cpu.md).
    /// </summary>
    private const int InlineFloats = 1 << 20;

    /// <summary>The fewest rows of <paramref name="rowLength"/> floats worth a part of their own (see <see cref="InlineFloats"/>).</summary>
    private static int MinRows(int rowLength) => Math.Max(1, InlineFloats / Math.Max(1, rowLength));

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
    }

    public Device Device => CpuDevice.Instance;
    public DType ActivationType => DType.F32;

    /// <summary>Bytes of the attention scratch (keys transposed, values packed), the only memory the ops hold besides their tensors.</summary>
    public long ScratchBytes => _scratchFloats * sizeof(float);

    /// <summary>Threads the managed loops use.</summary>
    public static int Threads => CpuParallel.ThreadCount;

    // ---------------------------------------------------------------------------------------------------------------
    // Linear: y = act(x · wᵀ + b)

    public void Linear(Tensor x, Tensor w, Tensor? b, Tensor y, Activation act = Activation.None)
    {
        Check.F32(x, w, y);
        if (b is not null)
            Check.F32(b);
        var (m, n, k) = Check.Linear(x, w, b, y);
        if (m == 0 || n == 0)
            return;
        OpenBlas.cblas_sgemm(OpenBlas.RowMajor, OpenBlas.NoTrans, OpenBlas.Trans, m, n, k,
            1f, F(x), k, F(w), k, 0f, F(y), n);
        if (b is null && act == Activation.None)
            return;
        var job = new BiasActivationJob { Y = F(y), Bias = b is null ? null : F(b), N = n, Act = act };
        CpuParallel.For(m, ref job, minChunk: MinRows(n));
    }

    private struct BiasActivationJob : IRangeJob
    {
        public float* Y, Bias;
        public int N;
        public Activation Act;

        public readonly void Execute(int start, int end)
        {
            for (int row = start; row < end; row++)
            {
                var y = new Span<float>(Y + (long)row * N, N);
                if (Bias is not null)
                    TensorPrimitives.Add(y, new ReadOnlySpan<float>(Bias, N), y);
                CpuMath.Activate(y, Act);
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Elementwise

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
            CpuMath.Activate(new Span<float>(Y + start, end - start), Activation.Silu);
        }
    }

    public void Add(Tensor a, Tensor b, Tensor y)
    {
        Check.F32(a, b, y);
        Check.SameCount(a, b, "Add");
        Check.SameCount(a, y, "Add");
        TensorPrimitives.Add(a.AsSpan<float>(), b.AsSpan<float>(), y.AsSpan<float>());
    }

    // ---------------------------------------------------------------------------------------------------------------
    // LayerNorm + adaLN modulation, gated residual

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
        CpuParallel.For(batch * tokens, ref job, minChunk: MinRows(d));
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
                float* shift = m + Shift, scale = m + Scale;
                // Two passes, as PyTorch: the mean, then the mean of squared deviations (biased variance).
                float mean = TensorPrimitives.Sum(new ReadOnlySpan<float>(x, D)) / D;
                var vmean = Vector256.Create(mean);
                float var = 0;
                int i = 0;
                if (Vector256.IsHardwareAccelerated)
                {
                    var acc = Vector256<float>.Zero;
                    for (; i + 8 <= D; i += 8)
                    {
                        var c = Vector256.Load(x + i) - vmean;
                        acc += c * c;
                    }
                    var = Vector256.Sum(acc);
                }
                for (; i < D; i++)
                    var += (x[i] - mean) * (x[i] - mean);
                float rstd = 1f / MathF.Sqrt(var / D + Eps);
                i = 0;
                if (Vector256.IsHardwareAccelerated)
                {
                    var vrstd = Vector256.Create(rstd);
                    for (; i + 8 <= D; i += 8)
                    {
                        var n = (Vector256.Load(x + i) - vmean) * vrstd;
                        (n * (Vector256<float>.One + Vector256.Load(scale + i)) + Vector256.Load(shift + i)).Store(y + i);
                    }
                }
                for (; i < D; i++)
                    y[i] = (x[i] - mean) * rstd * (1f + scale[i]) + shift[i];
            }
        }
    }

    public void GatedResidualAdd(Tensor x, Tensor h, Tensor mod, int gateChunk)
    {
        Check.F32(x, h, mod);
        var (batch, tokens, d) = Check.Btd(x, "GatedResidualAdd");
        Check.SameCount(x, h, "GatedResidualAdd");
        int chunks = Check.Modulation(mod, batch, d, "GatedResidualAdd", gateChunk, gateChunk);
        var job = new GatedAddJob { X = F(x), H = F(h), Mod = F(mod), Tokens = tokens, D = d, ModStride = chunks * d, Gate = gateChunk * d };
        CpuParallel.For(batch * tokens, ref job, minChunk: MinRows(d));
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
            Scale = 1f / MathF.Sqrt(dh),
        };
        CpuParallel.For(batch * heads * rowBlocks, ref rows);
    }

    private void EnsureScratch(long floats)
    {
        if (_scratchFloats >= floats)
            return;
        System.Runtime.InteropServices.NativeMemory.AlignedFree(_scratch);
        _scratch = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
        _scratchFloats = floats;
    }

    /// <summary>Numerically stable softmax: subtract the row maximum, exponentiate, divide by the sum.</summary>
    internal static void SoftmaxInPlace(Span<float> row)
    {
        float max = TensorPrimitives.Max(row);
        int i = 0;
        float sum = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vmax = Vector256.Create(max);
            var vsum = Vector256<float>.Zero;
            ref float r0 = ref row[0];
            for (; i + 8 <= row.Length; i += 8)
            {
                var e = CpuMath.Exp(Vector256.LoadUnsafe(ref r0, (nuint)i) - vmax);
                e.StoreUnsafe(ref r0, (nuint)i);
                vsum += e;
            }
            sum = Vector256.Sum(vsum);
        }
        for (; i < row.Length; i++)
        {
            row[i] = MathF.Exp(row[i] - max);
            sum += row[i];
        }
        TensorPrimitives.Multiply(row, 1f / sum, row);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Patches and embeddings

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

    public void DdimStep(Tensor x, Tensor modelOutput, in DdimCoefficients c, Tensor? noise)
    {
        Check.F32(x, modelOutput);
        var (n, channels, plane) = Check.SamplerShapes(x, modelOutput, noise, 1, "DdimStep");
        float* xs = F(x), o = F(modelOutput), z = noise is null ? null : F(noise);
        if (z is null && c.E != 0)
            throw new ArgumentException("DdimStep: noise is required when the noise coefficient is not zero");
        long item = (long)channels * plane, outItem = (long)modelOutput.Dim(1) * plane;
        for (int i = 0; i < n; i++)
            for (long e = 0; e < item; e++)
            {
                long at = i * item + e;
                float xv = xs[at], eps = o[i * outItem + e];
                float zv = z is null ? 0f : z[at];
                if (c.RederiveEps)
                {
                    float x0 = c.A * xv - c.B * eps;
                    float eps2 = (c.A * xv - x0) / c.B;
                    xs[at] = x0 * c.C + c.D * eps2 + c.E * zv;
                }
                else
                {
                    float x0 = (xv - c.B * eps) / c.A;
                    xs[at] = c.C * x0 + c.D * eps + c.E * zv;
                }
            }
    }

    public void AncestralStep(Tensor x, Tensor modelOutput, in AncestralCoefficients c, Tensor? noise)
    {
        Check.F32(x, modelOutput);
        var (n, channels, plane) = Check.SamplerShapes(x, modelOutput, noise, 2, "AncestralStep", exactChannels: true);
        if (noise is null && c.Nonzero != 0)
            throw new ArgumentException("AncestralStep: noise is required except at the last step");
        float* xs = F(x), o = F(modelOutput), z = noise is null ? null : F(noise);
        long item = (long)channels * plane, outItem = 2 * item;
        for (int i = 0; i < n; i++)
            for (long e = 0; e < item; e++)
            {
                long at = i * item + e;
                float xv = xs[at], eps = o[i * outItem + e], v = o[i * outItem + item + e];
                float x0 = c.A * xv - c.B * eps;
                float mean = c.C1 * x0 + c.C2 * xv;
                float frac = (v + 1f) / 2f;
                float logVar = frac * c.MaxLog + (1f - frac) * c.MinLog;
                xs[at] = z is null ? mean : mean + c.Nonzero * MathF.Exp(0.5f * logVar) * z[at];
            }
    }

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

    public void Dispose()
    {
        System.Runtime.InteropServices.NativeMemory.AlignedFree(_scratch);
        _scratch = null;
        _scratchFloats = 0;
    }
}

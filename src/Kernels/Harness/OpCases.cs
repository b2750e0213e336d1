using BlockDance.Runtime;

namespace BlockDance.Kernels.Harness;

/// <summary>
/// Every op of <see cref="IOps"/> as a harness case (adding an op adds its case here): inputs from fixed seeds, the
/// naive reference, the test shapes (odd ones, and ones above the CPU device's inline limit of 2^20 floats so its
/// epilogues and norms run split over threads) and a DiT-XL/2 benchmark shape (B = 2, T = 256, D = 1152, 16 heads,
/// patch 2, latent 4×32×32). Flops and bytes are napkin math: every operand read or written once.
/// </summary>
public static class OpCases
{
    private const int B = 2, T = 256, D = 1152, H = 16, P = 2, C = 4, Latent = 32;

    /// <summary>The cases, in the order of <see cref="IOps"/>.</summary>
    public static IReadOnlyList<OpCase> All { get; } =
    [
        Linear("linear", bias: true, Activation.None, [[5, 7, 11], [1, 13, 3], [37, 64, 48], [512, 384, 384], [1031, 1100, 16]], [B * T, 3 * D, D]),
        Linear("linear_nobias", bias: false, Activation.None, [[5, 7, 11], [1, 13, 3], [37, 64, 48], [512, 384, 384], [1031, 1100, 16]], [B * T, D, D]),
        Linear("linear_gelu", bias: true, Activation.GeluTanh, [[5, 7, 11], [64, 1536, 384]], [B * T, 4 * D, D]),
        Linear("linear_silu", bias: true, Activation.Silu, [[3, 17, 256]], [B, 6 * D, D]),
        new("silu", "N", [[1], [385], [100_003]], [B * D], (ctx, s) =>
        {
            int n = OpCase.Int(s, 0);
            var x = ctx.Random(n, 7, 8f);
            var xt = ctx.Input(x, n); var y = ctx.Output(n);
            return new(() => ctx.Ops.Silu(xt, y), [new("Silu", y, () => NaiveReference.Map(x, NaiveReference.Silu))], 4.0 * n, Bytes(ctx, 2L * n));
        }),
        new("add", "B,T,D", [[5, 7, 11]], [B, T, D], (ctx, s) =>
        {
            var (b, t, d) = (OpCase.Int(s, 0), OpCase.Int(s, 1), OpCase.Int(s, 2));
            int n = b * t * d;
            var a = ctx.Random(n, 8); var c = ctx.Random(n, 9);
            var at = ctx.Input(a, b, t, d); var ct = ctx.Input(c, b, t, d); var y = ctx.Output(b, t, d);
            return new(() => ctx.Ops.Add(at, ct, y), [new("Add", y, () => a.Zip(c, (p, q) => p + q).ToArray())], n, Bytes(ctx, 3L * n));
        }),
        new("layernorm_modulate", "B,T,D[,eps]", [[5, 7, 11, 1e-6], [2, 3, 1, 1e-5], [2, 256, 384, 1e-6], [3, 5, 1152, 1e-5], [2, 520, 1031, 1e-6]], [B, T, D], (ctx, s) =>
        {
            var (b, t, d) = (OpCase.Int(s, 0), OpCase.Int(s, 1), OpCase.Int(s, 2));
            float eps = s.Length > 3 ? (float)s[3] : 1e-6f;
            // Offsets and scales make mean and variance matter (a LayerNorm that forgets to centre fails).
            var x = ctx.Stored(NaiveReference.Random(b * t * d, 10, 3f).Select((v, i) => v * (1 + i % 5) + 2f).ToArray());
            var mod = ctx.Random(b * 6 * d, 11, 0.5f);
            var xt = ctx.Input(x, b, t, d); var mt = ctx.Input(mod, b, 6 * d); var y = ctx.Output(b, t, d);
            return new(() => ctx.Ops.LayerNormModulate(xt, mt, 3, 4, eps, y),
                [new($"LayerNormModulate {b}x{t}x{d}", y, () => LayerNormModulateReference(x, mod, b, t, d, 6, 3, 4, eps))],
                8.0 * b * t * d, Bytes(ctx, 2L * b * t * d + 2L * b * d));
        }),
        new("gated_residual_add", "B,T,D", [[5, 7, 11], [2, 256, 384], [2, 520, 1031]], [B, T, D], (ctx, s) =>
        {
            var (b, t, d) = (OpCase.Int(s, 0), OpCase.Int(s, 1), OpCase.Int(s, 2));
            var x = ctx.Random(b * t * d, 12); var h = ctx.Random(b * t * d, 13); var mod = ctx.Random(b * 6 * d, 14);
            var ht = ctx.Input(h, b, t, d); var mt = ctx.Input(mod, b, 6 * d); var xt = ctx.InOut(x, b, t, d);
            return new(() => ctx.Ops.GatedResidualAdd(xt, ht, mt, 5), [new("GatedResidualAdd", xt, () => GatedAddReference(x, h, mod, b, t, d, 6, 5))],
                2.0 * b * t * d, Bytes(ctx, 3L * b * t * d));
        }),
        new("attention", "B,T,D,H", [[1, 5, 12, 3], [2, 7, 22, 2], [3, 17, 8, 1], [2, 256, 384, 6], [1, 64, 1152, 16]], [B, T, D, H], (ctx, s) =>
        {
            var (b, t, d, heads) = (OpCase.Int(s, 0), OpCase.Int(s, 1), OpCase.Int(s, 2), OpCase.Int(s, 3));
            var qkv = ctx.Random(b * t * 3 * d, 15, 2f);
            var qt = ctx.Input(qkv, b, t, 3 * d); var y = ctx.Output(b, t, d);
            return new(() => ctx.Ops.Attention(qt, heads, y), [new($"Attention B{b} T{t} D{d} H{heads}", y, () => AttentionReference(qkv, b, t, d, heads))],
                4.0 * b * t * t * d, Bytes(ctx, 4L * b * t * d));
        }),
        new("patchify", "B,C,H,W,P", [[2, 3, 10, 14, 2], [1, 4, 8, 8, 4]], [B, C, Latent, Latent, P], (ctx, s) =>
        {
            var (b, c, h, w, p) = (OpCase.Int(s, 0), OpCase.Int(s, 1), OpCase.Int(s, 2), OpCase.Int(s, 3), OpCase.Int(s, 4));
            int t = h / p * (w / p);
            var img = ctx.Random(b * c * h * w, 16);
            var it = ctx.Input(img, b, c, h, w); var cols = ctx.Output(b, t, c * p * p);
            return new(() => ctx.Ops.Patchify(it, p, cols), [new("Patchify", cols, () => Im2colReference(img, b, c, h, w, p), _ => 0)],
                0, Bytes(ctx, 2L * b * c * h * w));
        }),
        new("patch_embedding", "B,C,H,W,P,D", [[2, 3, 10, 14, 2, 7], [1, 4, 8, 8, 4, 5], [2, 4, 32, 32, 2, 384]], [B, C, Latent, Latent, P, D], (ctx, s) =>
        {
            var (b, c, h, w, p, d) = (OpCase.Int(s, 0), OpCase.Int(s, 1), OpCase.Int(s, 2), OpCase.Int(s, 3), OpCase.Int(s, 4), OpCase.Int(s, 5));
            int t = h / p * (w / p), k = c * p * p;
            var img = ctx.Random(b * c * h * w, 16); var wt = ctx.Random(d * k, 17, 0.3f); var bias = ctx.Random(d, 18);
            var it = ctx.Input(img, b, c, h, w); var wtt = ctx.Input(wt, d, k); var bt = ctx.Input(bias, d);
            var cols = ctx.Output(b, t, k); var y = ctx.Output(b, t, d);
            return new(() => { ctx.Ops.Patchify(it, p, cols); ctx.Ops.Linear(cols, wtt, bt, y); },
                [new("Patchify + Linear", y, () => PatchConvReference(img, wt, bias, b, c, h, w, p, d))],
                2.0 * b * t * k * d, Bytes(ctx, 3L * b * t * k + (long)d * k + (long)b * t * d));
        }),
        new("add_position_embedding", "B,T,D", [[3, 5, 11]], [B, T, D], (ctx, s) =>
        {
            var (b, t, d) = (OpCase.Int(s, 0), OpCase.Int(s, 1), OpCase.Int(s, 2));
            var x = ctx.Random(b * t * d, 20); var pos = ctx.Random(t * d, 21);
            var xt = ctx.InOut(x, b, t, d); var pt = ctx.Input(pos, t, d);
            return new(() => ctx.Ops.AddPositionEmbedding(xt, pt), [new("AddPositionEmbedding", xt, () => x.Select((v, i) => v + pos[i % (t * d)]).ToArray())],
                (double)b * t * d, Bytes(ctx, 2L * b * t * d + (long)t * d));
        }),
        new("swap_frame_token_axes", "B,P,Q,D", [[2, 3, 5, 7], [1, 8, 16, 64], [3, 16, 1, 5]], [B, 16, T, D], (ctx, s) =>
        {
            // There and back (Latte: a frame's tokens → a position's frames before a temporal block, then the way back);
            // the bench shape is 16 frames of DiT-XL/2's 256 tokens.
            var (b, p, q, d) = (OpCase.Int(s, 0), OpCase.Int(s, 1), OpCase.Int(s, 2), OpCase.Int(s, 3));
            var x = ctx.Random(b * p * q * d, 24);
            var xt = ctx.Input(x, b, p, q, d); var y = ctx.Output(b, q, p, d); var back = ctx.Output(b, p, q, d);
            return new(() => { ctx.Ops.SwapFrameTokenAxes(xt, y); ctx.Ops.SwapFrameTokenAxes(y, back); },
                [new("SwapFrameTokenAxes", y, () => SwapFrameTokenAxesReference(x, b, p, q, d), _ => 0), new("SwapFrameTokenAxes back", back, () => x, _ => 0)],
                0, Bytes(ctx, 4L * b * p * q * d));
        }),
        new("unpatchify", "B,C,H,W,P", [[2, 3, 10, 14, 2], [1, 8, 32, 32, 2], [3, 6, 16, 8, 4]], [B, 2 * C, Latent, Latent, P], (ctx, s) =>
        {
            var (b, c, h, w, p) = (OpCase.Int(s, 0), OpCase.Int(s, 1), OpCase.Int(s, 2), OpCase.Int(s, 3), OpCase.Int(s, 4));
            int t = h / p * (w / p);
            var x = ctx.Random(b * t * p * p * c, 19);
            var xt = ctx.Input(x, b, t, p * p * c); var y = ctx.Output(b, c, h, w);
            return new(() => ctx.Ops.Unpatchify(xt, p, y), [new("Unpatchify", y, () => UnpatchifyReference(x, b, c, h, w, p), _ => 0)],
                0, Bytes(ctx, 2L * b * c * h * w));
        }),
        new("timestep_embedding", "B,DIM,SHIFT", [[5, 256, 0], [5, 256, 1]], [B, 256, 0], (ctx, s) =>
        {
            var (b, dim, shift) = (OpCase.Int(s, 0), OpCase.Int(s, 1), OpCase.Int(s, 2));
            float[] steps = [0f, 1f, 20f, 500.5f, 999f];
            var t = Enumerable.Range(0, b).Select(i => steps[i % steps.Length]).ToArray();
            var tt = ctx.Input(t, DType.F32, b); var y = ctx.Output(b, dim);
            // cos/sin of arguments up to 999 in float32: a one-ulp difference in a frequency moves the angle by ~6e-5.
            return new(() => ctx.Ops.TimestepEmbedding(tt, shift, y),
                [new($"TimestepEmbedding shift {shift}", y, () => TimestepEmbeddingReference(t, dim, shift), tol => Math.Max(tol, 2e-4))],
                20.0 * b * dim / 2, 4.0 * b + Bytes(ctx, (long)b * dim));
        }),
        new("embedding_lookup", "V,D,B", [[11, 7, 4]], [1001, D, B], (ctx, s) =>
        {
            var (vocab, d, b) = (OpCase.Int(s, 0), OpCase.Int(s, 1), OpCase.Int(s, 2));
            var table = ctx.Random(vocab * d, 22);
            // The last row, the first, one inside, the last again (a repeated id), then a stride through the table.
            int[] ids = Enumerable.Range(0, b).Select(i => i switch { 0 or 3 => vocab - 1, 1 => 0, 2 => 3 % vocab, _ => (i * 5 + 1) % vocab }).ToArray();
            var tt = ctx.Input(table, vocab, d); var it = ctx.Input(ids, DType.I32, b); var y = ctx.Output(b, d);
            return new(() => ctx.Ops.EmbeddingLookup(tt, it, y), [new("EmbeddingLookup", y, () => ids.SelectMany(i => table.Skip(i * d).Take(d)).ToArray(), _ => 0)],
                0, Bytes(ctx, 2L * b * d));
        }),
        new("guidance_combine", "N,C,H,W,GUIDED", [[2, 8, 3, 5, 3], [2, 8, 3, 5, 4]], [1, 2 * C, Latent, Latent, 3], (ctx, s) =>
        {
            var (n, c, h, w, guided) = (OpCase.Int(s, 0), OpCase.Int(s, 1), OpCase.Int(s, 2), OpCase.Int(s, 3), OpCase.Int(s, 4));
            int plane = h * w;
            var o = ctx.Random(2 * n * c * plane, 23);
            var ot = ctx.Input(o, 2 * n, c, h, w); var y = ctx.Output(n, c, h, w);
            float[] Expected()
            {
                var expected = new float[n * c * plane];
                for (int i = 0; i < n; i++)
                    for (int ch = 0; ch < c; ch++)
                        for (int e = 0; e < plane; e++)
                        {
                            double cond = o[(i * c + ch) * plane + e], uncond = o[((n + i) * c + ch) * plane + e];
                            expected[(i * c + ch) * plane + e] = (float)(ch < guided ? uncond + 4 * (cond - uncond) : cond);
                        }
                return expected;
            }
            return new(() => ctx.Ops.GuidanceCombine(ot, guided, 4f, y), [new("GuidanceCombine", y, Expected)],
                3.0 * n * guided * plane, Bytes(ctx, 3L * n * c * plane));
        }),
        new("ddim_step", "N,C,H,W[,REDERIVE]", [[2, 4, 3, 3, 1], [2, 4, 3, 3, 0]], [1, C, Latent, Latent, 1], (ctx, s) =>
        {
            var (n, c, h, w) = (OpCase.Int(s, 0), OpCase.Int(s, 1), OpCase.Int(s, 2), OpCase.Int(s, 3));
            bool rederive = OpCase.Int(s, 4, 1) != 0;
            int count = n * c * h * w;
            var x = ctx.Random(count, 24); var o = ctx.Random(2 * count, 25); var z = ctx.Random(count, 26);
            const float A = 1.3f, Bc = 0.8f, Cc = 0.9f, Dc = 0.4f, E = 0.05f;
            var xt = ctx.InOut(x, n, c, h, w); var ot = ctx.Input(o, n, 2 * c, h, w); var zt = ctx.Input(z, n, c, h, w);
            float[] Expected()
            {
                var expected = new float[count];
                for (int i = 0; i < count; i++)
                {
                    int item = i / (c * h * w), e = i % (c * h * w);
                    double eps = o[item * 2 * c * h * w + e], x0, dir;
                    if (rederive) { x0 = A * x[i] - Bc * eps; dir = (A * x[i] - x0) / Bc; }
                    else { x0 = (x[i] - Bc * eps) / A; dir = eps; }
                    expected[i] = (float)(x0 * Cc + Dc * dir + E * z[i]);
                }
                return expected;
            }
            return new(() => ctx.Ops.DdimStep(xt, ot, A, Bc, Cc, Dc, E, rederive, zt), [new("DdimStep", xt, Expected)],
                10.0 * count, Bytes(ctx, 4L * count));
        }),
        new("ancestral_step", "N,C,H,W", [[2, 4, 3, 3]], [1, C, Latent, Latent], (ctx, s) =>
        {
            var (n, c, h, w) = (OpCase.Int(s, 0), OpCase.Int(s, 1), OpCase.Int(s, 2), OpCase.Int(s, 3));
            int count = n * c * h * w;
            var x = ctx.Random(count, 27); var o = ctx.Random(2 * count, 28); var z = ctx.Random(count, 29);
            const float A = 1.2f, Bc = 0.7f, C1 = 0.3f, C2 = 0.6f, MinLog = -6f, MaxLog = -4f, Nonzero = 1f;
            var xt = ctx.InOut(x, n, c, h, w); var ot = ctx.Input(o, n, 2 * c, h, w); var zt = ctx.Input(z, n, c, h, w);
            float[] Expected()
            {
                var expected = new float[count];
                for (int i = 0; i < count; i++)
                {
                    int item = i / (c * h * w), e = i % (c * h * w);
                    double eps = o[item * 2 * c * h * w + e], v = o[item * 2 * c * h * w + c * h * w + e];
                    double x0 = A * x[i] - Bc * eps, mean = C1 * x0 + C2 * x[i], f = (v + 1) / 2;
                    expected[i] = (float)(mean + Nonzero * Math.Exp(0.5 * (f * MaxLog + (1 - f) * MinLog)) * z[i]);
                }
                return expected;
            }
            return new(() => ctx.Ops.AncestralStep(xt, ot, A, Bc, C1, C2, MinLog, MaxLog, Nonzero, zt), [new("AncestralStep", xt, Expected)],
                20.0 * count, Bytes(ctx, 5L * count));
        }),
        new("relative_l1", "B,N[,ACCUMULATE]", [[3, 1031, 0], [1, 7, 1], [4, 65_537, 1]], [2 * B, T * D, 1], (ctx, s) =>
        {
            var (b, n) = (OpCase.Int(s, 0), OpCase.Int(s, 1));
            bool accumulate = OpCase.Int(s, 2, 0) != 0;
            const float Weight = 0.25f;
            var x = ctx.Random(b * n, 24); var r = ctx.Random(b * n, 25, 2f);
            var start = NaiveReference.Random(b, 26);   // F32 [B]: what an accumulating call adds to
            var xt = ctx.Input(x, b, n); var rt = ctx.Input(r, b, n); var y = ctx.InOut(start, DType.F32, b);
            float[] Expected() => Enumerable.Range(0, b).Select(i =>
            {
                double diff = 0, norm = 0;
                for (int j = 0; j < n; j++)
                {
                    diff += Math.Abs((double)x[i * n + j] - r[i * n + j]);
                    norm += Math.Abs((double)r[i * n + j]);
                }
                return (float)((accumulate ? start[i] : 0) + Weight * diff / norm);
            }).ToArray();
            return new(() => ctx.Ops.RelativeL1(xt, rt, y, Weight, accumulate), [new("RelativeL1", y, Expected)], 3.0 * b * n, Bytes(ctx, 2L * b * n));
        }),
        new("random_normal", "N[,SEED,OFFSET]", [[1001, 42, 99_000]], [C * Latent * Latent], (ctx, s) =>
        {
            int n = OpCase.Int(s, 0);
            ulong seed = (ulong)OpCase.Int(s, 1, 1), offset = (ulong)OpCase.Int(s, 2, 0);
            var y = ctx.Output(DType.F32, n);
            // Philox4x32-10 + Box–Muller: the CPU device and the emulator match to the bit; a GPU's logf/sinf/cosf to ~1e-7.
            return new(() => ctx.Ops.RandomNormal(y, seed, offset),
                [new("RandomNormal", y, () => Enumerable.Range(0, n).Select(i => Philox.Normal(seed, offset + (ulong)i)).ToArray(), _ => 1e-6)],
                0, 4.0 * n);
        }),
    ];

    // ---- The naive loop references of the cases: written straight from the model specification with double
    // accumulation and no code shared with the backends. Slow on purpose.

    /// <summary>y[M,N] = act(x[M,K]·w[N,K]ᵀ + b[N]) in double.</summary>
    internal static float[] LinearReference(float[] x, float[] w, float[]? b, int m, int n, int k, Func<double, double>? act = null)
    {
        var y = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = b is null ? 0 : b[j];
                for (int p = 0; p < k; p++)
                    s += (double)x[i * k + p] * w[j * k + p];
                y[i * n + j] = (float)(act is null ? s : act(s));
            }
        return y;
    }
    /// <summary>LayerNorm (no affine, biased variance) then x·(1+scale)+shift with shift/scale chunks of mod [B, n·D].</summary>
    private static float[] LayerNormModulateReference(float[] x, float[] mod, int b, int t, int d, int chunks, int shift, int scale, double eps)
    {
        var y = new float[x.Length];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < t; j++)
            {
                int row = (i * t + j) * d;
                double mean = 0, var = 0;
                for (int e = 0; e < d; e++) mean += x[row + e];
                mean /= d;
                for (int e = 0; e < d; e++) var += (x[row + e] - mean) * (x[row + e] - mean);
                var /= d;
                for (int e = 0; e < d; e++)
                {
                    double sh = mod[i * chunks * d + shift * d + e], sc = mod[i * chunks * d + scale * d + e];
                    y[row + e] = (float)((x[row + e] - mean) / Math.Sqrt(var + eps) * (1 + sc) + sh);
                }
            }
        return y;
    }
    /// <summary>x + gate chunk of mod ⊙ h, per batch item.</summary>
    private static float[] GatedAddReference(float[] x, float[] h, float[] mod, int b, int t, int d, int chunks, int gate)
    {
        var y = (float[])x.Clone();
        for (int i = 0; i < b; i++)
            for (int j = 0; j < t; j++)
                for (int e = 0; e < d; e++)
                    y[(i * t + j) * d + e] += mod[i * chunks * d + gate * d + e] * h[(i * t + j) * d + e];
        return y;
    }
    /// <summary>softmax(q·kᵀ/√Dh)·v per batch item and head, timm's qkv layout (B, T, 3, H, Dh).</summary>
    private static float[] AttentionReference(float[] qkv, int b, int t, int d, int heads)
    {
        int dh = d / heads;
        var y = new float[b * t * d];
        var scores = new double[t];
        for (int i = 0; i < b; i++)
            for (int h = 0; h < heads; h++)
                for (int q = 0; q < t; q++)
                {
                    double max = double.NegativeInfinity;
                    for (int k = 0; k < t; k++)
                    {
                        double s = 0;
                        for (int e = 0; e < dh; e++)
                            s += (double)qkv[(i * t + q) * 3 * d + h * dh + e] * qkv[(i * t + k) * 3 * d + d + h * dh + e];
                        scores[k] = s / Math.Sqrt(dh);
                        max = Math.Max(max, scores[k]);
                    }
                    double sum = 0;
                    for (int k = 0; k < t; k++) sum += scores[k] = Math.Exp(scores[k] - max);
                    for (int e = 0; e < dh; e++)
                    {
                        double o = 0;
                        for (int k = 0; k < t; k++)
                            o += scores[k] / sum * qkv[(i * t + k) * 3 * d + 2 * d + h * dh + e];
                        y[(i * t + q) * d + h * dh + e] = (float)o;
                    }
                }
        return y;
    }
    /// <summary>A direct Conv2d with kernel = stride = p, the PatchEmbed of timm: out[b, token, o].</summary>
    private static float[] PatchConvReference(float[] img, float[] w, float[] bias, int b, int c, int hgt, int wid, int p, int dOut)
    {
        int gh = hgt / p, gw = wid / p;
        var y = new float[b * gh * gw * dOut];
        for (int i = 0; i < b; i++)
            for (int r = 0; r < gh; r++)
                for (int col = 0; col < gw; col++)
                    for (int o = 0; o < dOut; o++)
                    {
                        double s = bias[o];
                        for (int ch = 0; ch < c; ch++)
                            for (int u = 0; u < p; u++)
                                for (int v = 0; v < p; v++)
                                    s += (double)w[((o * c + ch) * p + u) * p + v] * img[((i * c + ch) * hgt + r * p + u) * wid + col * p + v];
                        y[((i * gh + r) * gw + col) * dOut + o] = (float)s;
                    }
        return y;
    }
    /// <summary>im2col of a Conv2d with kernel = stride = p: cols[b, r·(W/p)+c, ch·p·p + i·p + j] = image[b, ch, r·p+i, c·p+j].</summary>
    private static float[] Im2colReference(float[] img, int b, int c, int hgt, int wid, int p)
    {
        int gh = hgt / p, gw = wid / p, k = c * p * p;
        var cols = new float[b * gh * gw * k];
        for (int n = 0; n < b; n++)
            for (int r = 0; r < gh; r++)
                for (int col = 0; col < gw; col++)
                    for (int ch = 0; ch < c; ch++)
                        for (int u = 0; u < p; u++)
                            for (int v = 0; v < p; v++)
                                cols[((n * gh + r) * gw + col) * k + (ch * p + u) * p + v] = img[((n * c + ch) * hgt + r * p + u) * wid + col * p + v];
        return cols;
    }
    /// <summary>y[b, j, i, :] = x[b, i, j, :] for x [B, P, Q, D], by the definition.</summary>
    private static float[] SwapFrameTokenAxesReference(float[] x, int b, int p, int q, int d)
    {
        var y = new float[x.Length];
        for (int n = 0; n < b; n++)
            for (int i = 0; i < p; i++)
                for (int j = 0; j < q; j++)
                    for (int e = 0; e < d; e++)
                        y[(((long)n * q + j) * p + i) * d + e] = x[(((long)n * p + i) * q + j) * d + e];
        return y;
    }
    /// <summary>einsum nhwpqc->nchpwq of DiT's unpatchify.</summary>
    private static float[] UnpatchifyReference(float[] x, int b, int c, int hgt, int wid, int p)
    {
        int gh = hgt / p, gw = wid / p;
        var y = new float[b * c * hgt * wid];
        for (int n = 0; n < b; n++)
            for (int h = 0; h < gh; h++)
                for (int w = 0; w < gw; w++)
                    for (int u = 0; u < p; u++)
                        for (int v = 0; v < p; v++)
                            for (int ch = 0; ch < c; ch++)
                                y[((n * c + ch) * hgt + h * p + u) * wid + w * p + v] = x[((n * gh + h) * gw + w) * p * p * c + (u * p + v) * c + ch];
        return y;
    }
    /// <summary>[cos(t·f) | sin(t·f)], f_i = exp(−ln(10⁴)·i/(half − shift)), in double.</summary>
    private static float[] TimestepEmbeddingReference(float[] t, int dim, int shift)
    {
        int half = dim / 2;
        var y = new float[t.Length * dim];
        for (int b = 0; b < t.Length; b++)
            for (int i = 0; i < half; i++)
            {
                double f = Math.Exp(-Math.Log(10000) * i / (half - shift));
                y[b * dim + i] = (float)Math.Cos(t[b] * f);
                y[b * dim + half + i] = (float)Math.Sin(t[b] * f);
            }
        return y;
    }

    /// <summary>The case named <paramref name="name"/>; an unknown name throws listing the known ones.</summary>
    public static OpCase Get(string name) => All.FirstOrDefault(c => c.Name == name)
        ?? throw new ArgumentException($"unknown op '{name}' (ops: {string.Join(", ", All.Select(c => c.Name))})");

    private static double Bytes(OpContext ctx, long elements) => (double)elements * ctx.Type.SizeOf();

    private static OpCase Linear(string name, bool bias, Activation act, double[][] shapes, double[] bench) => new(name, "M,N,K", shapes, bench, (ctx, s) =>
    {
        var (m, n, k) = (OpCase.Int(s, 0), OpCase.Int(s, 1), OpCase.Int(s, 2));
        // The activation variants draw their own data (as the tests always did): seeds 4-6 and a wider weight range.
        bool plain = act == Activation.None;
        var x = ctx.Random(m * k, plain ? 1 : 4); var w = ctx.Random(n * k, plain ? 2 : 5, plain ? 0.2f : 0.3f); var b = ctx.Random(n, plain ? 3 : 6);
        var xt = ctx.Input(x, m, k); var wt = ctx.Input(w, n, k); var bt = bias ? ctx.Input(b, n) : null; var y = ctx.Output(m, n);
        Func<double, double>? f = act switch { Activation.GeluTanh => NaiveReference.GeluTanh, Activation.Silu => NaiveReference.Silu, _ => null };
        string what = act == Activation.None ? bias ? $"Linear {m}x{n}x{k}" : $"Linear without bias {m}x{n}x{k}" : $"Linear+{act}";
        return new(() => ctx.Ops.Linear(xt, wt, bt, y, act), [new(what, y, () => LinearReference(x, w, bias ? b : null, m, n, k, f))],
            2.0 * m * n * k, ctx.Type.SizeOf() * ((double)m * k + (double)n * k + (double)m * n));
    });
}

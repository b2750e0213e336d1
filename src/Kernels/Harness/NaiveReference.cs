namespace BlockDance.Kernels.Harness;

/// <summary>
/// Naive loop implementations of every op, written straight from the model specification with double accumulation and
/// no code shared with the backends. They are slow on purpose: they are the independent reference the CPU device and
/// the CUDA kernels are checked against (by <see cref="OpHarness"/>, from the tests and from <c>blockdance test-ops</c>).
/// </summary>
public static class NaiveReference
{
    /// <summary>y[M,N] = act(x[M,K]·w[N,K]ᵀ + b[N]) in double.</summary>
    public static float[] Linear(float[] x, float[] w, float[]? b, int m, int n, int k, Func<double, double>? act = null)
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

    /// <summary>GELU, tanh approximation.</summary>
    public static double GeluTanh(double x) => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

    /// <summary>x·σ(x).</summary>
    public static double Silu(double x) => x / (1 + Math.Exp(-x));

    /// <summary>f applied to every element, in double.</summary>
    public static float[] Map(float[] x, Func<double, double> f) => x.Select(v => (float)f(v)).ToArray();

    /// <summary>LayerNorm (no affine, biased variance) then x·(1+scale)+shift with shift/scale chunks of mod [B, n·D].</summary>
    public static float[] LayerNormModulate(float[] x, float[] mod, int b, int t, int d, int chunks, int shift, int scale, double eps)
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
    public static float[] GatedAdd(float[] x, float[] h, float[] mod, int b, int t, int d, int chunks, int gate)
    {
        var y = (float[])x.Clone();
        for (int i = 0; i < b; i++)
            for (int j = 0; j < t; j++)
                for (int e = 0; e < d; e++)
                    y[(i * t + j) * d + e] += mod[i * chunks * d + gate * d + e] * h[(i * t + j) * d + e];
        return y;
    }

    /// <summary>softmax(q·kᵀ/√Dh)·v per batch item and head, timm's qkv layout (B, T, 3, H, Dh).</summary>
    public static float[] Attention(float[] qkv, int b, int t, int d, int heads)
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
    public static float[] PatchConv(float[] img, float[] w, float[] bias, int b, int c, int hgt, int wid, int p, int dOut)
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
    public static float[] Im2col(float[] img, int b, int c, int hgt, int wid, int p)
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

    /// <summary>einsum nhwpqc->nchpwq of DiT's unpatchify.</summary>
    public static float[] Unpatchify(float[] x, int b, int c, int hgt, int wid, int p)
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
    public static float[] TimestepEmbedding(float[] t, int dim, int shift)
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

    /// <summary>Max |a − b| / max |b| (the dump comparison), with a short report of the worst element.</summary>
    public static (double Rel, string Report) Compare(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        if (actual.Length != expected.Length)
            return (double.PositiveInfinity, $"lengths differ: {actual.Length} vs {expected.Length}");
        double maxAbs = 0, maxRef = 0;
        int worst = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double d = Math.Abs((double)actual[i] - expected[i]);
            if (!double.IsFinite(d))
                return (double.PositiveInfinity, $"non-finite at {i}: {actual[i]} vs {expected[i]}");
            if (d > maxAbs) { maxAbs = d; worst = i; }
            maxRef = Math.Max(maxRef, Math.Abs(expected[i]));
        }
        double rel = maxRef == 0 ? maxAbs : maxAbs / maxRef;
        return (rel, $"max abs {maxAbs:E3} at {worst} ({actual[worst]} vs {expected[worst]}), max |ref| {maxRef:E3}, rel {rel:E3}");
    }

    /// <summary>Deterministic test data in [−scale, scale).</summary>
    public static float[] Random(int n, int seed, float scale = 1f)
    {
        var rng = new System.Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++)
            a[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
        return a;
    }
}

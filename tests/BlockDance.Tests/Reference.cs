using BlockDance.Kernels.Harness;

namespace BlockDance.Tests;

/// <summary>
/// The naive loop implementations of every op (<see cref="NaiveReference"/>, shared with the op harness and
/// <c>blockdance test-ops</c>): written straight from the model specification with double accumulation and no code
/// shared with the backends, the independent reference the CPU device and the CUDA kernels are checked against.
/// </summary>
public static class Reference
{
    public static float[] Linear(float[] x, float[] w, float[]? b, int m, int n, int k, Func<double, double>? act = null) => NaiveReference.Linear(x, w, b, m, n, k, act);

    public static double GeluTanh(double x) => NaiveReference.GeluTanh(x);

    public static double Silu(double x) => NaiveReference.Silu(x);

    public static float[] Map(float[] x, Func<double, double> f) => NaiveReference.Map(x, f);

    public static float[] LayerNormModulate(float[] x, float[] mod, int b, int t, int d, int chunks, int shift, int scale, double eps) =>
        NaiveReference.LayerNormModulate(x, mod, b, t, d, chunks, shift, scale, eps);

    public static float[] GatedAdd(float[] x, float[] h, float[] mod, int b, int t, int d, int chunks, int gate) => NaiveReference.GatedAdd(x, h, mod, b, t, d, chunks, gate);

    public static float[] Attention(float[] qkv, int b, int t, int d, int heads) => NaiveReference.Attention(qkv, b, t, d, heads);

    public static float[] PatchConv(float[] img, float[] w, float[] bias, int b, int c, int hgt, int wid, int p, int dOut) =>
        NaiveReference.PatchConv(img, w, bias, b, c, hgt, wid, p, dOut);

    public static float[] Unpatchify(float[] x, int b, int c, int hgt, int wid, int p) => NaiveReference.Unpatchify(x, b, c, hgt, wid, p);

    public static float[] TimestepEmbedding(float[] t, int dim, int shift) => NaiveReference.TimestepEmbedding(t, dim, shift);

    public static (double Rel, string Report) Compare(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected) => NaiveReference.Compare(actual, expected);

    public static float[] Random(int n, int seed, float scale = 1f) => NaiveReference.Random(n, seed, scale);
}

using BlockDance.Kernels.Harness;

namespace BlockDance.Tests;

/// <summary>
/// The tests' comparison and data helpers, shared with the op harness (<see cref="NaiveReference"/>); each op's naive
/// loop reference is in <see cref="Kernels.Harness.OpCases"/>, next to its case.
/// </summary>
public static class Reference
{
    public static double Silu(double x) => NaiveReference.Silu(x);

    public static double GeluTanh(double x) => NaiveReference.GeluTanh(x);

    /// <summary>y[M,N] = act(x[M,K]·w[N,K]ᵀ + b[N]) in double: the linear case's naive loop.</summary>
    public static float[] Linear(float[] x, float[] w, float[]? b, int m, int n, int k, Func<double, double>? act = null) =>
        OpCases.LinearReference(x, w, b, m, n, k, act);

    public static (double Rel, string Report) Compare(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected) => NaiveReference.Compare(actual, expected);

    public static float[] Random(int n, int seed, float scale = 1f) => NaiveReference.Random(n, seed, scale);
}

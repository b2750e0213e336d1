using BlockDance.Kernels.Harness;

namespace BlockDance.Tests;

/// <summary>
/// The tests' comparison and data helpers, shared with the op harness (<see cref="NaiveReference"/>); each op's naive
/// loop reference is in <see cref="Kernels.Harness.OpCases"/>, next to its case.
/// </summary>
public static class Reference
{
    public static double Silu(double x) => NaiveReference.Silu(x);

    public static (double Rel, string Report) Compare(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected) => NaiveReference.Compare(actual, expected);

    public static float[] Random(int n, int seed, float scale = 1f) => NaiveReference.Random(n, seed, scale);
}

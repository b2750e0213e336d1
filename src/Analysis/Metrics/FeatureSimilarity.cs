namespace BlockDance.Analysis.Metrics;

/// <summary>
/// Similarity of two feature tensors of the same shape (block outputs, flattened), float32 in and float64 accumulation:
/// the measures of the BlockDance paper's analysis (Fig. 2: cosine similarity and relative L1 change between adjacent
/// steps). Non-finite inputs and length mismatches throw <see cref="ArgumentException"/>.
/// </summary>
/// <remarks>
/// Zero vectors: cosine similarity is 1 when both are zero (identical features) and 0 when only one is (no common
/// direction; torch's <c>cosine_similarity</c> also gives 0 there, by clamping the norm product at eps). Relative L1 of
/// a zero reference is 0 when both are zero and +∞ otherwise. With these conventions no measure is ever NaN.
/// </remarks>
public static class FeatureSimilarity
{
    /// <summary>The sums one pass over a pair gives: a·b, ‖a‖², ‖b‖², ‖a − b‖₁, ‖b‖₁.</summary>
    public readonly record struct PairSums(double Dot, double NormA2, double NormB2, double L1Diff, double L1B)
    {
        /// <summary><c>a·b / (‖a‖·‖b‖)</c>, clamped to [−1, 1] against rounding.</summary>
        public double Cosine => Cos(Dot, NormA2, NormB2);

        /// <summary><c>‖a − b‖₁ / ‖b‖₁</c>.</summary>
        public double RelativeL1 => L1B == 0 ? (L1Diff == 0 ? 0 : double.PositiveInfinity) : L1Diff / L1B;
    }

    /// <summary>Cosine similarity <c>a·b / (‖a‖₂·‖b‖₂)</c> in [−1, 1].</summary>
    /// <exception cref="ArgumentException">Lengths differ, the inputs are empty, or a value is not finite.</exception>
    public static double CosineSimilarity(ReadOnlySpan<float> a, ReadOnlySpan<float> b) => Sums(a, b).Cosine;

    /// <summary>Relative L1 change <c>‖a − b‖₁ / ‖b‖₁</c>, with <paramref name="b"/> the reference (the previous step).</summary>
    /// <exception cref="ArgumentException">Lengths differ, the inputs are empty, or a value is not finite.</exception>
    public static double RelativeL1(ReadOnlySpan<float> a, ReadOnlySpan<float> b) => Sums(a, b).RelativeL1;

    /// <summary>
    /// Mean over <paramref name="items"/> equal slices (the batch items of a <c>(B, T, D)</c> tensor) of the slices'
    /// cosine similarity; one item gives <see cref="CosineSimilarity"/> of the whole tensor.
    /// </summary>
    public static double MeanCosineSimilarity(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int items) =>
        MeanOverItems(a, b, items, static s => s.Cosine);

    /// <summary>Mean over <paramref name="items"/> equal slices of the slices' relative L1 change.</summary>
    public static double MeanRelativeL1(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int items) =>
        MeanOverItems(a, b, items, static s => s.RelativeL1);

    /// <summary>Mean over <paramref name="items"/> equal slices of one measure of the slices' <see cref="Sums"/>.</summary>
    private static double MeanOverItems(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int items, Func<PairSums, double> measure)
    {
        int size = ItemSize(a, b, items);
        double total = 0;
        for (int n = 0; n < items; n++)
            total += measure(Sums(a.Slice(n * size, size), b.Slice(n * size, size)));
        return total / items;
    }

    /// <summary>All the sums of one pass over <paramref name="a"/> and <paramref name="b"/>.</summary>
    /// <exception cref="ArgumentException">Lengths differ, the inputs are empty, or a value is not finite.</exception>
    public static PairSums Sums(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length)
            throw new ArgumentException($"the features differ in length: {a.Length} and {b.Length} values");
        if (a.Length == 0)
            throw new ArgumentException("the features are empty", nameof(a));
        double dot = 0, aa = 0, bb = 0, l1Diff = 0, l1B = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double x = a[i], y = b[i];
            dot += x * y;
            aa += x * x;
            bb += y * y;
            l1Diff += Math.Abs(x - y);
            l1B += Math.Abs(y);
        }
        // Products of finite floats cannot overflow a double sum, so a non-finite sum means a non-finite input.
        if (!double.IsFinite(dot) || !double.IsFinite(aa) || !double.IsFinite(bb))
            ImageMetrics.ThrowNonFinite(a, b, 0);
        return new PairSums(dot, aa, bb, l1Diff, l1B);
    }

    /// <summary>The dot product <c>a·b</c> accumulated in double (lengths must match; no finiteness check).</summary>
    internal static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length)
            throw new ArgumentException($"the features differ in length: {a.Length} and {b.Length} values");
        double dot = 0;
        for (int i = 0; i < a.Length; i++)
            dot += (double)a[i] * b[i];
        return dot;
    }

    /// <summary>Cosine from a dot product and the two squared norms, with the zero-vector conventions of the remarks.</summary>
    public static double Cos(double dot, double normA2, double normB2)
    {
        if (normA2 == 0 || normB2 == 0)
            return normA2 == 0 && normB2 == 0 ? 1 : 0;
        return Math.Clamp(dot / (Math.Sqrt(normA2) * Math.Sqrt(normB2)), -1, 1);
    }

    private static int ItemSize(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int items)
    {
        if (a.Length != b.Length)
            throw new ArgumentException($"the features differ in length: {a.Length} and {b.Length} values");
        if (items <= 0 || a.Length == 0 || a.Length % items != 0)
            throw new ArgumentException($"{a.Length} values do not split into {items} equal, non-empty items", nameof(items));
        return a.Length / items;
    }
}

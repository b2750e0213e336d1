using BlockDance.Analysis.Metrics;
using Xunit;

namespace BlockDance.Tests.Metrics;

public sealed class FeatureSimilarityTests
{
    private static float[] Random(int seed, int n)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => random.NextSingle() * 4 - 2).ToArray();
    }

    [Fact]
    public void Cosine_of_scaled_copies_is_plus_or_minus_one()
    {
        var x = Random(1, 1153);
        var twice = x.Select(v => 2 * v).ToArray();
        var negated = x.Select(v => -v).ToArray();
        Assert.Equal(1.0, FeatureSimilarity.CosineSimilarity(x, twice), 1e-15);
        Assert.Equal(-1.0, FeatureSimilarity.CosineSimilarity(x, negated), 1e-15);
        Assert.Equal(1.0, FeatureSimilarity.CosineSimilarity(x, x), 1e-15);
        Assert.InRange(FeatureSimilarity.CosineSimilarity(x, twice), -1.0, 1.0); // clamped against rounding
    }

    [Fact]
    public void Cosine_and_relative_L1_match_their_definitions()
    {
        var a = Random(2, 300);
        var b = Random(3, 300);
        double dot = 0, aa = 0, bb = 0, l1 = 0, l1b = 0;
        for (int i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            aa += (double)a[i] * a[i];
            bb += (double)b[i] * b[i];
            l1 += Math.Abs((double)a[i] - b[i]);
            l1b += Math.Abs((double)b[i]);
        }
        Assert.Equal(dot / Math.Sqrt(aa * bb), FeatureSimilarity.CosineSimilarity(a, b), 1e-14);
        Assert.Equal(l1 / l1b, FeatureSimilarity.RelativeL1(a, b), 1e-14);
        Assert.Equal(0.0, FeatureSimilarity.CosineSimilarity([1, 0], [0, 5]));
        Assert.Equal(1.0, FeatureSimilarity.RelativeL1([2, -4], [1, -2]));   // ‖(1, −2)‖₁ / ‖(1, −2)‖₁
        Assert.Equal(0.0, FeatureSimilarity.RelativeL1(a, a));
    }

    [Fact]
    public void Zero_vectors_follow_the_documented_conventions()
    {
        float[] zero = [0, 0, 0];
        float[] x = [1, 2, 3];
        Assert.Equal(1.0, FeatureSimilarity.CosineSimilarity(zero, zero));
        Assert.Equal(0.0, FeatureSimilarity.CosineSimilarity(x, zero));
        Assert.Equal(0.0, FeatureSimilarity.CosineSimilarity(zero, x));
        Assert.Equal(0.0, FeatureSimilarity.RelativeL1(zero, zero));
        Assert.Equal(double.PositiveInfinity, FeatureSimilarity.RelativeL1(x, zero));
        Assert.Equal(1.0, FeatureSimilarity.RelativeL1(zero, x));
    }

    [Fact]
    public void Item_means_average_the_per_item_values()
    {
        // Item 0 keeps its direction, item 1 flips: per-item cosines 1 and −1.
        float[] a = [1, 2, 3, 4];
        float[] b = [2, 4, -3, -4];
        Assert.Equal(0.0, FeatureSimilarity.MeanCosineSimilarity(a, b, 2), 1e-15);
        Assert.Equal((0.5 + 2.0) / 2, FeatureSimilarity.MeanRelativeL1(a, b, 2), 1e-15);
        Assert.Equal(FeatureSimilarity.CosineSimilarity(a, b), FeatureSimilarity.MeanCosineSimilarity(a, b, 1));
        Assert.Throws<ArgumentException>(() => FeatureSimilarity.MeanCosineSimilarity(a, b, 3));
        Assert.Throws<ArgumentException>(() => FeatureSimilarity.MeanRelativeL1(a, b, 0));
    }

    [Fact]
    public void Rejects_bad_inputs()
    {
        Assert.Throws<ArgumentException>(() => FeatureSimilarity.CosineSimilarity([1, 2], [1, 2, 3]));
        Assert.Throws<ArgumentException>(() => FeatureSimilarity.RelativeL1([], []));
        var e = Assert.Throws<ArgumentException>(() => FeatureSimilarity.CosineSimilarity([1, float.NaN], [1, 2]));
        Assert.Contains("element 1", e.Message);
        Assert.Throws<ArgumentException>(() => FeatureSimilarity.RelativeL1([1, 2], [float.PositiveInfinity, 2]));
    }
}

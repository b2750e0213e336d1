using BlockDance.Analysis.Metrics;
using Xunit;

namespace BlockDance.Tests.Metrics;

public sealed class ImageMetricsTests(ITestOutputHelper output)
{
    // Both sides compute in float64, so they agree to rounding (~1e-15). The bound of 1e-4 would not notice
    // sample instead of population covariances (that changes these fixtures' SSIM by 4e-6 to 2e-4), so SSIM is held to
    // 1e-9; PSNR, a log of one mean, to 1e-9 dB.
    private const double SsimTolerance = 1e-9, PsnrTolerance = 1e-9;

    public static TheoryData<string> CaseNames() =>
        new(MetricsFiles.SsimReference.Cases.Select(c => c.ToString()));

    private static (MetricsFiles.Case Case, MetricsFiles.Image A, MetricsFiles.Image B) Pair(string name)
    {
        var reference = MetricsFiles.SsimReference;
        var c = reference.Cases.Single(x => x.ToString() == name);
        return (c, reference.Images[c.A], reference.Images[c.B]);
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Ssim_matches_scikit_image(string name)
    {
        var (c, a, b) = Pair(name);
        double ssim = ImageMetrics.Ssim(a.Data, b.Data, a.Channels, a.Height, a.Width, c.DataRange);
        output.WriteLine($"{c}: C# {ssim:R}, skimage {c.Ssim:R}, diff {Math.Abs(ssim - c.Ssim):E2}");
        Assert.Equal(c.Ssim, ssim, SsimTolerance);
        // SSIM is symmetric.
        Assert.Equal(ssim, ImageMetrics.Ssim(b.Data, a.Data, a.Channels, a.Height, a.Width, c.DataRange), 1e-14);
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Psnr_and_relative_L2_match_numpy(string name)
    {
        var (c, a, b) = Pair(name);
        double psnr = ImageMetrics.Psnr(a.Data, b.Data, c.DataRange);
        output.WriteLine($"{c}: PSNR C# {psnr:R}, skimage {c.Psnr:R}");
        Assert.Equal(c.Psnr, psnr, PsnrTolerance);
        Assert.Equal(c.RelL2, ImageMetrics.RelativeL2(a.Data, b.Data), 1e-12);
    }

    [Fact]
    public void Ssim_of_an_image_with_itself_is_one()
    {
        foreach (var image in MetricsFiles.SsimReference.Images.Values)
        {
            double ssim = ImageMetrics.Ssim(image.Data, image.Data, image.Channels, image.Height, image.Width, 2);
            Assert.Equal(1.0, ssim, 1e-15);
        }
        var random = RandomValues(new Random(1), 3 * 40 * 33, -5, 5);
        Assert.Equal(1.0, ImageMetrics.Ssim(random, random, 3, 40, 33, 10), 1e-15);
    }

    [Fact]
    public void Psnr_of_identical_inputs_is_positive_infinity()
    {
        var x = RandomValues(new Random(2), 2 * 3 * 11 * 12, -1, 1);
        Assert.Equal(double.PositiveInfinity, ImageMetrics.Psnr(x, x, 2));
        Assert.Equal(0.0, ImageMetrics.RelativeL2(x, x));
    }

    [Fact]
    public void Psnr_follows_its_definition()
    {
        // MSE = 0.01 with R = 1: 10·log10(1 / 0.01) = 20 dB exactly.
        float[] a = [0.5f, 0.5f, 0.5f, 0.5f];
        float[] b = [0.4f, 0.6f, 0.4f, 0.6f];
        double mse = a.Zip(b, (x, y) => ((double)x - y) * ((double)x - y)).Average();
        Assert.Equal(10 * Math.Log10(1 / mse), ImageMetrics.Psnr(a, b, 1), 1e-12);
        Assert.Equal(20, ImageMetrics.Psnr(a, b, 1), 1e-5);
    }

    [Fact]
    public void Batches_average_the_per_image_values()
    {
        var reference = MetricsFiles.SsimReference;
        var cases = reference.Cases.Where(c => reference.Images[c.A].Shape.SequenceEqual([3, 32, 32])).ToList();
        Assert.True(cases.Count >= 2);
        float[] a = cases.SelectMany(c => reference.Images[c.A].Data).ToArray();
        float[] b = cases.SelectMany(c => reference.Images[c.B].Data).ToArray();

        double[] ssim = ImageMetrics.SsimPerImage(a, b, cases.Count, 3, 32, 32, 2);
        Assert.Equal(cases.Select(c => c.Ssim), ssim, (x, y) => Math.Abs(x - y) <= SsimTolerance);
        Assert.Equal(cases.Average(c => c.Ssim), ImageMetrics.SsimBatch(a, b, cases.Count, 3, 32, 32, 2), SsimTolerance);

        double[] psnr = ImageMetrics.PsnrPerImage(a, b, cases.Count, 2);
        Assert.Equal(cases.Select(c => c.Psnr), psnr, (x, y) => Math.Abs(x - y) <= PsnrTolerance);
        Assert.Equal(cases.Average(c => c.Psnr), ImageMetrics.PsnrBatch(a, b, cases.Count, 2), PsnrTolerance);
    }

    [Fact]
    public void Batch_psnr_is_infinite_when_any_image_is_identical()
    {
        var x = RandomValues(new Random(3), 3 * 16, -1, 1);
        var y = (float[])x.Clone();
        y[5] += 0.25f;                      // image 0 differs, images 1 and 2 are identical
        double[] perImage = ImageMetrics.PsnrPerImage(x, y, 3, 2);
        Assert.True(double.IsFinite(perImage[0]));
        Assert.Equal(double.PositiveInfinity, perImage[1]);
        Assert.Equal(double.PositiveInfinity, perImage[2]);
        Assert.Equal(double.PositiveInfinity, ImageMetrics.PsnrBatch(x, y, 3, 2));
        Assert.Equal(double.PositiveInfinity, ImageMetrics.PsnrBatch(x, x, 3, 2));
        Assert.True(double.IsFinite(ImageMetrics.PsnrBatch(x.AsSpan(0, 16), y.AsSpan(0, 16), 1, 2)));
    }

    [Fact]
    public void Relative_L2_matches_a_naive_loop()
    {
        var random = new Random(4);
        foreach (int n in new[] { 1, 7, 1000, 4099 })
        {
            var a = RandomValues(random, n, -3, 3);
            var b = RandomValues(random, n, -3, 3);
            double num = 0, den = 0;
            for (int i = 0; i < n; i++)
            {
                num += Math.Pow((double)a[i] - b[i], 2);
                den += Math.Pow(b[i], 2);
            }
            Assert.Equal(Math.Sqrt(num) / Math.Sqrt(den), ImageMetrics.RelativeL2(a, b), 1e-12);
        }
        float[] zero = [0, 0, 0];
        Assert.Equal(0.0, ImageMetrics.RelativeL2(zero, zero));
        Assert.Equal(double.PositiveInfinity, ImageMetrics.RelativeL2([1, 0, 0], zero));
        Assert.Equal(1.0, ImageMetrics.RelativeL2(zero, [0, 3, 4]));
    }

    [Fact]
    public void Rejects_mismatched_lengths()
    {
        var a = new float[3 * 11 * 11];
        var b = new float[3 * 11 * 11 - 1];
        Assert.Contains("363", Assert.Throws<ArgumentException>(() => ImageMetrics.Ssim(a, b, 3, 11, 11, 2)).Message);
        Assert.Throws<ArgumentException>(() => ImageMetrics.Ssim(a, a, 3, 11, 12, 2));
        Assert.Throws<ArgumentException>(() => ImageMetrics.Psnr(a, b, 2));
        Assert.Throws<ArgumentException>(() => ImageMetrics.RelativeL2(a, b));
        Assert.Throws<ArgumentException>(() => ImageMetrics.PsnrPerImage(a, a, 2, 2));   // 363 does not split into 2
        Assert.Throws<ArgumentException>(() => ImageMetrics.SsimBatch(a, a, 2, 3, 11, 11, 2));
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void Rejects_non_finite_inputs(float bad)
    {
        var a = new float[2 * 12 * 12];
        var b = new float[2 * 12 * 12];
        b[150] = bad;
        Assert.Contains("element 150", Assert.Throws<ArgumentException>(() => ImageMetrics.Ssim(a, b, 2, 12, 12, 2)).Message);
        Assert.Contains("element 150", Assert.Throws<ArgumentException>(() => ImageMetrics.Psnr(a, b, 2)).Message);
        Assert.Contains("element 150", Assert.Throws<ArgumentException>(() => ImageMetrics.PsnrPerImage(a, b, 2, 2)).Message);
        Assert.Contains("element 150", Assert.Throws<ArgumentException>(() => ImageMetrics.RelativeL2(b, a)).Message);
    }

    [Theory]
    [InlineData(10, 11)]
    [InlineData(11, 10)]
    [InlineData(4, 4)]
    public void Rejects_images_smaller_than_the_window(int height, int width)
    {
        var a = new float[height * width];
        var e = Assert.Throws<ArgumentException>(() => ImageMetrics.Ssim(a, a, 1, height, width, 2));
        Assert.Contains("11 × 11 window", e.Message);
        Assert.Contains($"{height} × {width}", e.Message);
    }

    [Fact]
    public void Accepts_the_smallest_image_and_rejects_bad_parameters()
    {
        var a = RandomValues(new Random(5), 11 * 11, -1, 1);
        Assert.Equal(1.0, ImageMetrics.Ssim(a, a, 1, 11, 11, 2), 1e-15);
        Assert.Throws<ArgumentException>(() => ImageMetrics.Ssim(a, a, 1, 11, 11, 0));
        Assert.Throws<ArgumentException>(() => ImageMetrics.Ssim(a, a, 1, 11, 11, double.NaN));
        Assert.Throws<ArgumentException>(() => ImageMetrics.Ssim(a, a, 1, 11, 11, 2, sigma: -1));
        Assert.Throws<ArgumentException>(() => ImageMetrics.Psnr(a, a, -2));
        Assert.Throws<ArgumentException>(() => ImageMetrics.Psnr([], [], 2));
        Assert.Equal(5, ImageMetrics.WindowRadius(1.5));
    }

    private static float[] RandomValues(Random random, int count, float low, float high)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
            values[i] = low + (high - low) * random.NextSingle();
        return values;
    }
}

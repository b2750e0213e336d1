namespace BlockDance.Analysis.Metrics;

/// <summary>
/// Consistency metrics between two results of the same shape, images or latents: SSIM, PSNR and relative L2. Inputs are
/// float32, the math is float64. Every metric rejects inputs of different lengths and inputs holding NaN or ±∞ with an
/// <see cref="ArgumentException"/> that names the offending element, so a diverged run cannot produce a plausible number.
/// </summary>
/// <remarks>
/// <para><b>SSIM</b> is Wang, Bovik, Sheikh and Simoncelli (2004), "Image quality assessment: from error visibility to
/// structural similarity", IEEE TIP 13(4), with their settings: Gaussian weights of σ = 1.5 on an 11 × 11 window,
/// K1 = 0.01, K2 = 0.03, population (not sample) covariances. It is computed per channel and averaged, and matches
/// scikit-image 0.19's <c>structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
/// data_range=R, channel_axis=0)</c> (checked by tests against values from <c>tools/ssim_reference.py</c>), including
/// its border handling: scikit-image filters the local statistics over the whole image with the borders extended by
/// reflection (scipy.ndimage mode <c>reflect</c>: <c>d c b a | a b c d | d c b a</c>) and then averages the SSIM map
/// only over the pixels at least <c>(win − 1) / 2</c> = 5 from every edge. Those pixels' windows lie inside the image,
/// so the reflection never affects the result, and this implementation evaluates the interior only. Each image side
/// must be at least the window size (11), as in scikit-image.</para>
/// <para><b>PSNR</b> is <c>10·log10(R² / MSE)</c>; identical inputs give <see cref="double.PositiveInfinity"/>, as in
/// scikit-image. The batch mean (<see cref="PsnrBatch"/>) is the plain mean of the per-image values, so it is +∞ exactly
/// when at least one image pair is identical: a pair with no error has no finite PSNR, and capping it at an arbitrary
/// value (100 dB, …) would make the mean depend on that constant. Callers that want to summarise such a batch
/// differently get the per-image values from <see cref="PsnrPerImage"/>.</para>
/// </remarks>
public static class ImageMetrics
{
    /// <summary>Wang et al.'s σ of the Gaussian window.</summary>
    public const double DefaultSigma = 1.5;

    /// <summary>Wang et al.'s stabilising constants: C1 = (K1·R)², C2 = (K2·R)².</summary>
    public const double DefaultK1 = 0.01, DefaultK2 = 0.03;

    /// <summary>
    /// Window radius for <paramref name="sigma"/>: scikit-image truncates the Gaussian at 3.5 σ and rounds as
    /// scipy.ndimage does, <c>r = (int)(3.5σ + 0.5)</c>, which is 5 (an 11-tap window) for σ = 1.5.
    /// </summary>
    public static int WindowRadius(double sigma) => (int)(3.5 * sigma + 0.5);

    /// <summary>
    /// Mean SSIM of two images <c>[C, H, W]</c> (each channel's SSIM map averaged over its interior, then the channels
    /// averaged). 1 for identical images.
    /// </summary>
    /// <param name="dataRange">R: the distance between the smallest and largest possible value (2 for [−1, 1], 255 for 8-bit).</param>
    /// <exception cref="ArgumentException">Lengths or shapes differ, a value is not finite, an image side is shorter than the window, or a parameter is out of range.</exception>
    public static double Ssim(
        ReadOnlySpan<float> a, ReadOnlySpan<float> b, int channels, int height, int width, double dataRange,
        double sigma = DefaultSigma, double k1 = DefaultK1, double k2 = DefaultK2)
    {
        CheckImages(a, b, 1, channels, height, width);
        var ssim = new SsimComputer(height, width, dataRange, sigma, k1, k2);
        return ssim.Image(a, b, channels);
    }

    /// <summary>SSIM of every image pair of two batches <c>[N, C, H, W]</c>.</summary>
    public static double[] SsimPerImage(
        ReadOnlySpan<float> a, ReadOnlySpan<float> b, int images, int channels, int height, int width, double dataRange,
        double sigma = DefaultSigma, double k1 = DefaultK1, double k2 = DefaultK2)
    {
        CheckImages(a, b, images, channels, height, width);
        var ssim = new SsimComputer(height, width, dataRange, sigma, k1, k2);
        int size = channels * height * width;
        var result = new double[images];
        for (int n = 0; n < images; n++)
            result[n] = ssim.Image(a.Slice(n * size, size), b.Slice(n * size, size), channels);
        return result;
    }

    /// <summary>Mean over the images of two batches <c>[N, C, H, W]</c> of their SSIM.</summary>
    public static double SsimBatch(
        ReadOnlySpan<float> a, ReadOnlySpan<float> b, int images, int channels, int height, int width, double dataRange,
        double sigma = DefaultSigma, double k1 = DefaultK1, double k2 = DefaultK2) =>
        SsimPerImage(a, b, images, channels, height, width, dataRange, sigma, k1, k2).Average();

    /// <summary>
    /// PSNR in dB of two tensors of any shape treated as one image: <c>10·log10(R² / mean((a − b)²))</c>;
    /// <see cref="double.PositiveInfinity"/> when they are identical.
    /// </summary>
    /// <exception cref="ArgumentException">Lengths differ or are zero, a value is not finite, or the range is not positive.</exception>
    public static double Psnr(ReadOnlySpan<float> a, ReadOnlySpan<float> b, double dataRange)
    {
        CheckDataRange(dataRange);
        CheckSameLength(a, b);
        if (a.Length == 0)
            throw new ArgumentException("PSNR of empty inputs is undefined", nameof(a));
        return PsnrOf(a, b, dataRange, 0);
    }

    /// <summary>PSNR of every image pair of two batches of <paramref name="images"/> equal-sized images (any per-image shape).</summary>
    public static double[] PsnrPerImage(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int images, double dataRange)
    {
        CheckDataRange(dataRange);
        CheckSameLength(a, b);
        int size = ImageSize(a.Length, images);
        var result = new double[images];
        for (int n = 0; n < images; n++)
            result[n] = PsnrOf(a.Slice(n * size, size), b.Slice(n * size, size), dataRange, n * size);
        return result;
    }

    /// <summary>
    /// Mean of the per-image PSNRs; +∞ when at least one image pair is identical (see the remarks on
    /// <see cref="ImageMetrics"/>). Never NaN.
    /// </summary>
    public static double PsnrBatch(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int images, double dataRange) =>
        PsnrPerImage(a, b, images, dataRange).Average();

    /// <summary>
    /// <c>‖a − b‖₂ / ‖b‖₂</c>, with <paramref name="b"/> the reference. When ‖b‖₂ = 0 it is 0 if <paramref name="a"/> is
    /// zero too and +∞ otherwise.
    /// </summary>
    /// <exception cref="ArgumentException">Lengths differ or a value is not finite.</exception>
    public static double RelativeL2(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        CheckSameLength(a, b);
        double diff = 0, reference = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = (double)a[i] - b[i];
            diff += d * d;
            reference += (double)b[i] * b[i];
        }
        // Squares of finite floats cannot overflow a double sum (≤ 1.2e77 each), so a non-finite sum means a non-finite input.
        if (!double.IsFinite(diff) || !double.IsFinite(reference))
            ThrowNonFinite(a, b, 0);
        if (reference == 0)
            return diff == 0 ? 0 : double.PositiveInfinity;
        return Math.Sqrt(diff / reference);
    }

    private static double PsnrOf(ReadOnlySpan<float> a, ReadOnlySpan<float> b, double dataRange, int offset)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = (double)a[i] - b[i];
            sum += d * d;
        }
        if (!double.IsFinite(sum))
            ThrowNonFinite(a, b, offset);
        double mse = sum / a.Length;
        return mse == 0 ? double.PositiveInfinity : 10 * Math.Log10(dataRange * dataRange / mse);
    }

    private static int ImageSize(int length, int images)
    {
        if (images <= 0)
            throw new ArgumentException($"the batch needs at least one image, not {images}", nameof(images));
        if (length == 0 || length % images != 0)
            throw new ArgumentException($"{length} values do not split into {images} equal, non-empty images", nameof(images));
        return length / images;
    }

    private static void CheckImages(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int images, int channels, int height, int width)
    {
        if (images <= 0 || channels <= 0 || height <= 0 || width <= 0)
            throw new ArgumentException($"the shape [{images}, {channels}, {height}, {width}] needs positive sizes");
        long expected = (long)images * channels * height * width;
        if (a.Length != expected || b.Length != expected)
            throw new ArgumentException(
                $"the shape [{images}, {channels}, {height}, {width}] needs {expected} values, but the inputs have {a.Length} and {b.Length}");
        for (int i = 0; i < a.Length; i++)
            if (!float.IsFinite(a[i]) || !float.IsFinite(b[i]))
                ThrowNonFinite(a, b, 0);
    }

    private static void CheckSameLength(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length)
            throw new ArgumentException($"the inputs differ in length: {a.Length} and {b.Length} values");
    }

    internal static void CheckDataRange(double dataRange)
    {
        if (!double.IsFinite(dataRange) || dataRange <= 0)
            throw new ArgumentException($"the data range must be a positive, finite number, not {dataRange}", nameof(dataRange));
    }

    /// <summary>Throws for the first non-finite element of either input (element indices count from <paramref name="offset"/>).</summary>
    internal static void ThrowNonFinite(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int offset)
    {
        for (int i = 0; i < a.Length; i++)
        {
            if (!float.IsFinite(a[i]))
                throw new ArgumentException($"the first input has a non-finite value ({a[i]}) at element {offset + i}", nameof(a));
            if (!float.IsFinite(b[i]))
                throw new ArgumentException($"the second input has a non-finite value ({b[i]}) at element {offset + i}", nameof(b));
        }
        throw new ArgumentException("an input has a non-finite value");
    }

    /// <summary>
    /// One image size's SSIM machinery: the Gaussian taps and the work buffers, reused for every channel and image.
    /// </summary>
    /// <remarks>
    /// scikit-image filters the whole image with reflected borders and then averages the SSIM map only over pixels at
    /// least r = (win − 1) / 2 from every edge. The window of such a pixel lies entirely inside the image, so the border
    /// extension never reaches the averaged values: filtering only over the interior ("valid" correlation, no border
    /// handling at all) gives exactly the same numbers, in a fraction of the work. The tests against scikit-image's
    /// values check this, and that the crop is there (without it the fixtures' SSIM changes by 0.003 to 0.1).
    /// </remarks>
    private sealed class SsimComputer
    {
        private readonly int _height, _width, _radius;
        private readonly double _c1, _c2;
        private readonly double[] _taps;
        private readonly double[] _x, _y, _products;
        private readonly double[] _vertical;               // (H − 2r) × W: filtered along H only
        private readonly double[] _mx, _my, _mxx, _myy, _mxy; // (H − 2r) × (W − 2r): local weighted means

        public SsimComputer(int height, int width, double dataRange, double sigma, double k1, double k2)
        {
            CheckDataRange(dataRange);
            if (!double.IsFinite(sigma) || sigma <= 0)
                throw new ArgumentException($"sigma must be a positive, finite number, not {sigma}", nameof(sigma));
            if (!double.IsFinite(k1) || k1 < 0 || !double.IsFinite(k2) || k2 < 0)
                throw new ArgumentException($"K1 and K2 must be non-negative, finite numbers, not {k1} and {k2}");
            _radius = WindowRadius(sigma);
            int window = 2 * _radius + 1;
            if (height < window || width < window)
                throw new ArgumentException(
                    $"SSIM with σ = {sigma} uses a {window} × {window} window, and each image side must be at least that long; the images are {height} × {width}");
            _height = height;
            _width = width;
            _c1 = k1 * dataRange * (k1 * dataRange);
            _c2 = k2 * dataRange * (k2 * dataRange);

            // scipy.ndimage._gaussian_kernel1d: exp(−x² / 2σ²) for x = −r … r, normalised to sum 1.
            _taps = new double[window];
            double sum = 0;
            for (int i = 0; i < window; i++)
            {
                double x = i - _radius;
                _taps[i] = Math.Exp(-0.5 / (sigma * sigma) * x * x);
                sum += _taps[i];
            }
            for (int i = 0; i < window; i++)
                _taps[i] /= sum;

            int n = height * width;
            int innerHeight = height - 2 * _radius, innerWidth = width - 2 * _radius;
            _x = new double[n];
            _y = new double[n];
            _products = new double[n];
            _vertical = new double[innerHeight * width];
            _mx = new double[innerHeight * innerWidth];
            _my = new double[_mx.Length];
            _mxx = new double[_mx.Length];
            _myy = new double[_mx.Length];
            _mxy = new double[_mx.Length];
        }

        /// <summary>Mean over channels of the per-channel SSIM of one image pair [C, H, W].</summary>
        public double Image(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int channels)
        {
            int plane = _height * _width;
            double total = 0;
            for (int c = 0; c < channels; c++)
                total += Channel(a.Slice(c * plane, plane), b.Slice(c * plane, plane));
            return total / channels;
        }

        private double Channel(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
        {
            for (int i = 0; i < _x.Length; i++)
            {
                _x[i] = a[i];
                _y[i] = b[i];
            }
            // Local (Gaussian-weighted) means of x, y, x², y², xy, formed as skimage forms them.
            Blur(_x, _mx);
            Blur(_y, _my);
            for (int i = 0; i < _x.Length; i++)
                _products[i] = _x[i] * _x[i];
            Blur(_products, _mxx);
            for (int i = 0; i < _x.Length; i++)
                _products[i] = _y[i] * _y[i];
            Blur(_products, _myy);
            for (int i = 0; i < _x.Length; i++)
                _products[i] = _x[i] * _y[i];
            Blur(_products, _mxy);

            // The mean of the SSIM map over the interior.
            double sum = 0;
            for (int i = 0; i < _mx.Length; i++)
            {
                double ux = _mx[i], uy = _my[i];
                double vx = _mxx[i] - ux * ux;      // population variances and covariance (Wang et al.)
                double vy = _myy[i] - uy * uy;
                double vxy = _mxy[i] - ux * uy;
                double numerator = (2 * ux * uy + _c1) * (2 * vxy + _c2);
                double denominator = (ux * ux + uy * uy + _c1) * (vx + vy + _c2);
                sum += numerator / denominator;
            }
            return sum / _mx.Length;
        }

        /// <summary>
        /// Separable Gaussian filter evaluated at the interior pixels only, along H first and then along W (scipy's
        /// order); output pixel (y, x) is centred on input pixel (y + r, x + r).
        /// </summary>
        private void Blur(double[] input, double[] output)
        {
            int w = _width, window = _taps.Length;
            int innerHeight = _height - 2 * _radius, innerWidth = _width - 2 * _radius;
            for (int y = 0; y < innerHeight; y++)
            {
                for (int x = 0; x < w; x++)
                {
                    double s = 0;
                    for (int k = 0; k < window; k++)
                        s += _taps[k] * input[(y + k) * w + x];
                    _vertical[y * w + x] = s;
                }
            }
            for (int y = 0; y < innerHeight; y++)
            {
                int row = y * w;
                for (int x = 0; x < innerWidth; x++)
                {
                    double s = 0;
                    for (int k = 0; k < window; k++)
                        s += _taps[k] * _vertical[row + x + k];
                    output[y * innerWidth + x] = s;
                }
            }
        }
    }
}

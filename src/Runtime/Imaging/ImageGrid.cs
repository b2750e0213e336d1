namespace BlockDance.Runtime.Imaging;

/// <summary>
/// Lays out a batch of float images <c>[N, C, H, W]</c> (C = 3 for RGB, 1 for grayscale) as one RGB image: a grid of
/// <c>rows</c> rows filled row by row (N = rows × columns for one row per class), with <c>padding</c> pixels of
/// <c>padColor</c> around and between the cells, like torchvision's <c>make_grid</c>. Values map linearly from
/// [<c>low</c>, <c>high</c>] to [0, 255] as DiT's <c>save_image(..., normalize=True, value_range=(-1, 1))</c> does:
/// clamp to the range, then <c>floor(255·t + 0.5)</c>.
/// </summary>
internal static class ImageGrid
{
    /// <summary>Builds the grid; the image count is <c>images.Length / (C·H·W)</c>.</summary>
    /// <param name="images">[N, C, H, W] row-major, channels R, G, B (or one gray channel).</param>
    /// <param name="rows">Grid rows; columns are <c>ceil(N / rows)</c> and a short last row is left as padding colour.</param>
    /// <exception cref="ArgumentException">Shapes do not fit, the range is empty, or a value is NaN.</exception>
    public static RgbImage Compose(
        ReadOnlySpan<float> images, int channels, int height, int width, int rows,
        int padding = 2, float low = -1f, float high = 1f, Rgb? padColor = null)
    {
        if (channels is not (1 or 3))
            throw new ArgumentException($"an image grid takes 1 (gray) or 3 (RGB) channels, not {channels}", nameof(channels));
        if (height <= 0 || width <= 0)
            throw new ArgumentException($"image size must be positive, not {height} × {width}");
        if (padding < 0)
            throw new ArgumentException($"padding must not be negative, not {padding}", nameof(padding));
        if (!float.IsFinite(low) || !float.IsFinite(high) || !(high > low))
            throw new ArgumentException($"the value range [{low}, {high}] must be finite with high > low");
        long perImage = (long)channels * height * width;
        if (images.Length == 0 || images.Length % perImage != 0)
            throw new ArgumentException(
                $"{images.Length} values are not a whole number of [{channels}, {height}, {width}] images ({perImage} values each)", nameof(images));
        int count = checked((int)(images.Length / perImage));
        if (rows <= 0 || rows > count)
            throw new ArgumentException($"rows must be in [1, {count}] for {count} images, not {rows}", nameof(rows));
        int columns = (count + rows - 1) / rows;
        long gridWidth = (long)columns * (width + padding) + padding;
        long gridHeight = (long)rows * (height + padding) + padding;
        if (gridWidth > int.MaxValue || gridHeight > int.MaxValue)
            throw new ArgumentException($"a {rows} × {columns} grid of {height} × {width} images is too large");

        var grid = new RgbImage((int)gridWidth, (int)gridHeight, padColor ?? Rgb.Black);
        byte[] pixels = grid.Pixels;
        float range = high - low;
        int plane = height * width;
        for (int n = 0; n < count; n++)
        {
            var image = images.Slice((int)(n * perImage), (int)perImage);
            int left = padding + (n % columns) * (width + padding);
            int top = padding + (n / columns) * (height + padding);
            for (int c = 0; c < 3; c++)
            {
                var source = image.Slice((channels == 1 ? 0 : c) * plane, plane);
                for (int y = 0; y < height; y++)
                {
                    int dst = 3 * ((top + y) * grid.Width + left) + c;
                    for (int x = 0; x < width; x++, dst += 3)
                    {
                        float v = source[y * width + x];
                        if (float.IsNaN(v))
                            throw new ArgumentException($"image {n} has NaN at channel {(channels == 1 ? 0 : c)}, pixel ({x}, {y})", nameof(images));
                        // torchvision: clamp to [low, high], (v − low) / (high − low), ·255 + 0.5, truncate to uint8.
                        float t = (Math.Clamp(v, low, high) - low) / range;
                        pixels[dst] = (byte)Math.Min(255f, t * 255f + 0.5f);
                    }
                }
            }
        }
        return grid;
    }
}

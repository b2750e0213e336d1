using BlockDance.Runtime.Imaging;
using Xunit;

namespace BlockDance.Tests.Metrics;

public sealed class ImageGridTests
{
    [Fact]
    public void Lays_out_rows_with_padding_and_maps_values_like_torchvision()
    {
        // 5 RGB images of 2 × 3 in 2 rows → 3 columns, the last cell of row 2 empty.
        const int n = 5, h = 2, w = 3, pad = 1;
        var images = new float[n * 3 * h * w];
        for (int i = 0; i < n; i++)
            for (int c = 0; c < 3; c++)
                for (int p = 0; p < h * w; p++)
                    images[((i * 3) + c) * h * w + p] = -1 + 0.1f * i + 0.5f * c;   // constant per image and channel
        var pink = new Rgb(255, 0, 255);
        var grid = ImageGrid.Compose(images, 3, h, w, rows: 2, padding: pad, padColor: pink);
        Assert.Equal(3 * (w + pad) + pad, grid.Width);
        Assert.Equal(2 * (h + pad) + pad, grid.Height);
        for (int i = 0; i < n; i++)
        {
            int left = pad + (i % 3) * (w + pad), top = pad + (i / 3) * (h + pad);
            for (int c = 0; c < 3; c++)
            {
                float v = -1 + 0.1f * i + 0.5f * c;
                byte expected = (byte)Math.Min(255f, (Math.Clamp(v, -1f, 1f) + 1f) / 2f * 255f + 0.5f);
                var pixel = grid[left + 2, top + 1];
                Assert.Equal(expected, c == 0 ? pixel.R : c == 1 ? pixel.G : pixel.B);
            }
            Assert.Equal(pink, grid[left - 1, top]);                 // padding left of every cell
        }
        Assert.Equal(pink, grid[pad + 2 * (w + pad) + 1, pad + h + pad + 1]);  // the empty sixth cell
    }

    [Fact]
    public void Clamps_and_handles_gray_and_other_ranges()
    {
        float[] gray = [-5, -1, 0, 0.5f, 1, 7];   // one 2 × 3 gray image
        var grid = ImageGrid.Compose(gray, 1, 2, 3, rows: 1, padding: 0);
        byte[] expected = [0, 0, 128, 191, 255, 255];
        for (int p = 0; p < 6; p++)
            Assert.Equal(new Rgb(expected[p], expected[p], expected[p]), grid[p % 3, p / 3]);

        var latent = ImageGrid.Compose([0, 50, 100, 200], 1, 2, 2, rows: 1, padding: 0, low: 0, high: 100);
        Assert.Equal(new Rgb(128, 128, 128), latent[1, 0]);
        Assert.Equal(Rgb.White, latent[1, 1]);
    }

    [Fact]
    public void Rejects_bad_input()
    {
        var one = new float[3 * 4 * 4];
        Assert.Throws<ArgumentException>(() => ImageGrid.Compose(one, 4, 4, 3, rows: 1));            // 4 channels
        Assert.Throws<ArgumentException>(() => ImageGrid.Compose(one.AsSpan(1), 3, 4, 4, rows: 1));  // not whole images
        Assert.Throws<ArgumentException>(() => ImageGrid.Compose(one, 3, 4, 4, rows: 2));            // more rows than images
        Assert.Throws<ArgumentException>(() => ImageGrid.Compose(one, 3, 4, 4, rows: 1, low: 1, high: 1));
        one[7] = float.NaN;
        Assert.Contains("NaN", Assert.Throws<ArgumentException>(() => ImageGrid.Compose(one, 3, 4, 4, rows: 1)).Message);
    }
}

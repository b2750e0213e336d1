using BlockDance.Dit.Plotting;
using BlockDance.Runtime.Imaging;
using Xunit;

namespace BlockDance.Tests.Metrics;

public sealed class HeatmapTests
{
    private static int Count(RgbImage image, Rgb color)
    {
        int n = 0;
        for (int y = 0; y < image.Height; y++)
            for (int x = 0; x < image.Width; x++)
                if (image[x, y] == color)
                    n++;
        return n;
    }

    /// <summary>Mean row of the pixels of <paramref name="color"/> inside the cell area's columns.</summary>
    private static double MeanRow(RgbImage image, Rgb color, int maxX)
    {
        long sum = 0, n = 0;
        for (int y = 0; y < image.Height; y++)
            for (int x = 0; x < maxX; x++)
                if (image[x, y] == color)
                {
                    sum += y;
                    n++;
                }
        return (double)sum / n;
    }

    [Fact]
    public void CellsTakeTheColourMapAndNaNIsNoData()
    {
        double[,] values = { { 0, 0.5, 1 }, { double.NaN, 0.25, double.PositiveInfinity } };
        var image = Heatmap.Render(values, new HeatmapOptions { Title = "Test", XLabel = "step", YLabel = "block", ColorBarLabel = "cosine" });
        Assert.True(image.Width >= 500 + 100, $"width {image.Width}");
        // 3 columns → cells ⌈500 / 3⌉ = 167 wide; 2 rows → cells clamped to ⌈200 / 2⌉ … ⌈600 / 2⌉, i.e. square 167.
        int cell = 167 * 167;
        Assert.InRange(Count(image, Heatmap.NoDataColor), cell, cell + 2000);   // the NaN cell and the legend swatch
        Assert.True(Count(image, Viridis.Map(0)) >= cell);
        Assert.True(Count(image, Viridis.Map(1)) >= 2 * cell);                   // 1 and +∞ (clamped)
        Assert.True(Count(image, Viridis.Map(0.5)) >= cell);
        Assert.True(Count(image, Viridis.Map(0.25)) >= cell);
        Assert.Equal(Rgb.White, image[0, 0]);
    }

    [Fact]
    public void RowZeroCanBeAtTheTopOrTheBottom()
    {
        double[,] values = { { 0 }, { 1 } };
        var options = new HeatmapOptions { MinPlotWidth = 100 };
        var top = Heatmap.Render(values, options);
        var bottom = Heatmap.Render(values, options with { RowZeroAtBottom = true });
        // Only the cell area: the colour bar to its right has both colours too.
        int plotMaxX = top.Width / 2;
        Assert.True(MeanRow(top, Viridis.Map(0), plotMaxX) < MeanRow(top, Viridis.Map(1), plotMaxX));
        Assert.True(MeanRow(bottom, Viridis.Map(0), plotMaxX) > MeanRow(bottom, Viridis.Map(1), plotMaxX));
    }

    [Fact]
    public void ExplicitRangeClampsAndConstantMatricesWork()
    {
        double[,] values = { { -3, 0.5, 9 } };
        var image = Heatmap.Render(values, new HeatmapOptions { Min = 0, Max = 1 });
        Assert.True(Count(image, Viridis.Map(0)) >= 167 * 200);
        Assert.True(Count(image, Viridis.Map(1)) >= 167 * 200);
        Assert.Equal((0.0, 1.0), Heatmap.ColorRange(values, new HeatmapOptions { Min = 0, Max = 1 }));
        Assert.Equal((-3.0, 9.0), Heatmap.ColorRange(values));

        var flat = Heatmap.Render(new double[,] { { 2, 2 }, { 2, 2 } });
        Assert.True(Count(flat, Viridis.Map(0.5)) >= 4 * 250 * 250);
        var empty = Heatmap.Render(new double[,] { { double.NaN } });
        Assert.True(Count(empty, Heatmap.NoDataColor) >= 500 * 500);
    }

    [Fact]
    public void LargeMatricesKeepWholePixelCells()
    {
        var values = new double[28, 250];
        for (int b = 0; b < 28; b++)
            for (int k = 0; k < 250; k++)
                values[b, k] = Math.Cos(b * 0.1) * k;
        var image = Heatmap.Render(values, new HeatmapOptions { XLabel = "step", YLabel = "block" });
        Assert.InRange(image.Width, 500, 1000);
        Assert.InRange(image.Height, 200, 800);
    }

    [Fact]
    public void RejectsBadInput()
    {
        Assert.Throws<ArgumentException>(() => Heatmap.Render(new double[0, 3]));
        Assert.Throws<ArgumentException>(() => Heatmap.Render(new double[,] { { 1 } }, new HeatmapOptions { Min = 2, Max = 1 }));
        Assert.Throws<ArgumentException>(() => Heatmap.Render(new double[,] { { 1 } }, new HeatmapOptions { TextScale = 0 }));
        Assert.Throws<ArgumentException>(() => Viridis.Map(double.NaN));
    }

    [Fact]
    public void ScaleLabelsShowTheEndsAndRoundValues()
    {
        static string[] Labels(double lo, double hi, double gap = 0.05) =>
            Heatmap.ScaleTicks(lo, hi, gap).OrderBy(t => t.Fraction).Select(t => t.Label).ToArray();
        Assert.Equal(["0.00", "0.2", "0.4", "0.6", "0.8", "1.00"], Labels(0, 1));
        Assert.Equal(["-1.00", "-0.5", "0.0", "0.5", "1.00"], Labels(-1, 1));
        Assert.Equal(["0.9134", "0.92", "0.94", "0.96", "0.98", "0.9998"], Labels(0.9134, 0.9998));
        Assert.Equal(["-249000", "-200000", "-100000", "0", "100000", "200000", "248575"], Labels(-249000, 248575, 0.02));
        Assert.Equal(["0.9500", "0.96", "0.97", "0.98", "0.99", "1.0000"], Labels(0.95, 1, 0.01));
        Assert.Equal(["0.00", "0.25", "0.50", "0.75", "1.00", "1.25"], Labels(0, 1.25, 0.1));
        Assert.Equal(["0", "25", "50", "75", "100", "125"], Labels(0, 125, 0.1));
        // Round values too close to an end are left out so labels never overlap.
        Assert.Equal(["0.00", "0.4", "0.6", "1.00"], Labels(0, 1, 0.25));
        Assert.Equal(["2.000"], Labels(2, 2));
        Assert.Equal(["1.5E+7", "2E+7"], Labels(1.5e7, 2e7, 0.5));
    }

    [Fact]
    public void ViridisHasItsPublishedEndsAndMiddle()
    {
        Assert.Equal(Rgb.FromHex("#440154"), Viridis.Map(0));
        Assert.Equal(Rgb.FromHex("#21918C"), Viridis.Map(0.5));
        Assert.Equal(Rgb.FromHex("#FDE725"), Viridis.Map(1));
        Assert.Equal(Viridis.Map(0), Viridis.Map(-4));
        // Perceptually ordered: luminance rises monotonically along the table.
        double Luma(Rgb c) => 0.2126 * c.R + 0.7152 * c.G + 0.0722 * c.B;
        for (int i = 1; i < 256; i++)
            Assert.True(Luma(Viridis.Entry(i)) > Luma(Viridis.Entry(i - 1)) - 0.5, $"entry {i}");
    }

    [Fact]
    public void FontCoversThePlotCharactersWithDistinctGlyphs()
    {
        const string required = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-:()% ,/=+_[]";
        foreach (char c in required)
            Assert.True(BitmapFont.HasGlyph(c), $"no glyph for '{c}'");
        var bitmaps = new Dictionary<string, char>();
        foreach (char c in BitmapFont.Characters)
        {
            var bits = string.Concat(Enumerable.Range(0, BitmapFont.GlyphHeight * BitmapFont.GlyphWidth)
                .Select(i => BitmapFont.IsInk(c, i % BitmapFont.GlyphWidth, i / BitmapFont.GlyphWidth) ? '#' : '.'));
            Assert.False(bitmaps.TryGetValue(bits, out char other), $"'{c}' and '{other}' look the same");
            bitmaps[bits] = c;
            // Only letters with descenders (and a few marks) reach below the baseline.
            bool descends = Enumerable.Range(0, BitmapFont.GlyphWidth).Any(x =>
                BitmapFont.IsInk(c, x, BitmapFont.CapHeight) || BitmapFont.IsInk(c, x, BitmapFont.CapHeight + 1));
            Assert.Equal("gjpqy,;_|".Contains(c, StringComparison.Ordinal), descends);
        }
    }

    [Fact]
    public void TextIsDrawnFromTheGlyphsHorizontallyAndRotated()
    {
        const int scale = 2;
        var image = new RgbImage(40, 40, Rgb.White);
        BitmapFont.Draw(image, 3, 4, "L7", Rgb.Black, scale);
        var rotated = new RgbImage(40, 40, Rgb.White);
        BitmapFont.DrawVertical(rotated, 4, 35, "L7", Rgb.Black, scale);
        for (int i = 0; i < 2; i++)
        {
            char c = "L7"[i];
            for (int row = 0; row < BitmapFont.GlyphHeight; row++)
            {
                for (int column = 0; column < BitmapFont.GlyphWidth; column++)
                {
                    bool ink = BitmapFont.IsInk(c, column, row);
                    int u = (i * BitmapFont.Advance + column) * scale, v = row * scale;  // position along and down the text
                    Assert.Equal(ink, image[3 + u, 4 + v] == Rgb.Black);
                    Assert.Equal(ink, rotated[4 + v, 35 - 1 - u] == Rgb.Black);   // reading upwards, tops to the left
                }
            }
        }
        Assert.Equal((2 * BitmapFont.Advance - 1) * scale, BitmapFont.MeasureWidth("L7", scale));
        Assert.False(BitmapFont.HasGlyph('€'));
        BitmapFont.Draw(image, 0, 30, "€", Rgb.Black);   // drawn as a box, not dropped
        Assert.Equal(Rgb.Black, image[0, 30]);
    }
}

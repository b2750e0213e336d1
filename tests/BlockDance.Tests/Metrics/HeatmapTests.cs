using System.Xml.Linq;
using BlockDance.Analysis.Metrics;
using BlockDance.Analysis.Plotting;
using BlockDance.Dit.Caching;
using BlockDance.Runtime.Imaging;
using Xunit;

namespace BlockDance.Tests.Metrics;

public sealed class HeatmapTests
{
    /// <summary>The PNG decoded by the independent reader: width, height and the colour of every pixel (opaque ones).</summary>
    private sealed record Picture(int Width, int Height, Rgb?[] Pixels)
    {
        public Rgb? this[int x, int y] => Pixels[y * Width + x];

        public int Count(Rgb color) => Pixels.Count(p => p == color);

        /// <summary>Mean row of the pixels of <paramref name="color"/> left of <paramref name="maxX"/>.</summary>
        public double MeanRow(Rgb color, int maxX)
        {
            long sum = 0, n = 0;
            for (int y = 0; y < Height; y++)
                for (int x = 0; x < maxX; x++)
                    if (this[x, y] == color)
                    {
                        sum += y;
                        n++;
                    }
            return (double)sum / n;
        }

        /// <summary>The colours that cover at least <paramref name="pixels"/> pixels: the cells (the colour bar's rows are thin).</summary>
        public HashSet<Rgb> LargeAreas(int pixels) =>
            Pixels.Where(p => p is not null).GroupBy(p => p!.Value).Where(g => g.Count() >= pixels).Select(g => g.Key).ToHashSet();
    }

    private static Picture Render(double[,] values, HeatmapOptions? options = null)
    {
        var png = PngFile.Decode(Heatmap.EncodePng(values, options));
        int bpp = png.ColorType switch { 2 => 3, 6 => 4, _ => throw new InvalidDataException($"colour type {png.ColorType}") };
        var pixels = new Rgb?[png.Width * png.Height];
        for (int i = 0; i < pixels.Length; i++)
        {
            var p = png.Pixels.AsSpan(i * bpp, bpp);
            pixels[i] = bpp == 3 || p[3] == 255 ? new Rgb(p[0], p[1], p[2]) : null;
        }
        return new Picture(png.Width, png.Height, pixels);
    }

    // A 900 × 500 figure's data area is about 700 × 380 pixels: a 2 × 3 matrix has cells of about 230 × 190.
    private const int Cell = 200 * 150;

    [Fact]
    public void Cells_take_the_colour_map_and_NaN_is_no_data()
    {
        double[,] values = { { 0, 0.5, 1 }, { double.NaN, 0.25, double.PositiveInfinity } };
        var image = Render(values, new HeatmapOptions { Title = "Test", XLabel = "step", YLabel = "block", ColorBarLabel = "cosine" });
        Assert.Equal((900, 500), (image.Width, image.Height));
        Assert.InRange(image.Count(Heatmap.NoDataColor), Cell, 2 * Cell);      // the NaN cell and the legend swatch
        Assert.True(image.Count(Heatmap.ColorAt(0)) >= Cell);
        Assert.True(image.Count(Heatmap.ColorAt(1)) >= 2 * Cell);              // 1 and +∞ (clamped)
        Assert.True(image.Count(Heatmap.ColorAt(0.5)) >= Cell);
        Assert.True(image.Count(Heatmap.ColorAt(0.25)) >= Cell);
        Assert.Equal(Rgb.White, image[0, 0]);
    }

    [Fact]
    public void Row_zero_can_be_at_the_top_or_the_bottom()
    {
        double[,] values = { { 0 }, { 1 } };
        var options = new HeatmapOptions();
        var top = Render(values, options);
        var bottom = Render(values, options with { RowZeroAtBottom = true });
        // Only the cell area: the colour bar to its right has both colours too.
        int plotMaxX = top.Width / 2;
        Assert.True(top.MeanRow(Heatmap.ColorAt(0), plotMaxX) < top.MeanRow(Heatmap.ColorAt(1), plotMaxX));
        Assert.True(bottom.MeanRow(Heatmap.ColorAt(0), plotMaxX) > bottom.MeanRow(Heatmap.ColorAt(1), plotMaxX));
    }

    [Fact]
    public void Explicit_range_clamps_and_constant_matrices_work()
    {
        double[,] values = { { -3, 0.5, 9 } };
        var image = Render(values, new HeatmapOptions { Min = 0, Max = 1 });
        Assert.True(image.Count(Heatmap.ColorAt(0)) >= Cell);
        Assert.True(image.Count(Heatmap.ColorAt(1)) >= Cell);
        Assert.Equal((0.0, 1.0), Heatmap.ColorRange(values, new HeatmapOptions { Min = 0, Max = 1 }));
        Assert.Equal((-3.0, 9.0), Heatmap.ColorRange(values));

        var flat = Render(new double[,] { { 2, 2 }, { 2, 2 } });
        Assert.True(flat.Count(Heatmap.ColorAt(0.5)) >= 4 * Cell);
        var empty = Render(new double[,] { { double.NaN } });
        Assert.True(empty.Count(Heatmap.NoDataColor) >= 4 * Cell);
    }

    [Fact]
    public void Files_are_valid_png_and_svg_of_the_requested_size()
    {
        var values = new double[28, 250];
        for (int b = 0; b < 28; b++)
            for (int k = 0; k < 250; k++)
                values[b, k] = Math.Cos(b * 0.1) * k;
        var options = new HeatmapOptions { Width = 640, Height = 360, XLabel = "step", YLabel = "block" };
        using var dir = new MetricsFiles.Scratch();
        Heatmap.Save(dir.File("h.png"), values, options);
        Heatmap.Save(dir.File("h.svg"), values, options);
        var png = PngFile.Decode(File.ReadAllBytes(dir.File("h.png")));
        Assert.Equal((640, 360), (png.Width, png.Height));
        var svg = XDocument.Load(dir.File("h.svg")).Root!;
        Assert.Equal("svg", svg.Name.LocalName);
        Assert.Equal(("640", "360"), ((string?)svg.Attribute("width"), (string?)svg.Attribute("height")));
        Assert.Equal(["h.png", "h.svg"], dir.Entries());   // written atomically: no temporary file left
        Assert.Throws<ArgumentException>(() => Heatmap.Save(dir.File("h.jpg"), values, options));
        Assert.False(File.Exists(dir.File("h.jpg")));
    }

    [Fact]
    public void Svg_holds_the_titles_ticks_and_colour_bar()
    {
        var values = new double[12, 49];
        for (int b = 0; b < 12; b++)
            for (int k = 0; k < 49; k++)
                values[b, k] = b + 0.01 * k;
        string svg = Heatmap.ToSvg(values, new HeatmapOptions
        {
            Title = "Relative L1 change",
            XLabel = "step (compared with step - 1)",
            YLabel = "block",
            ColorBarLabel = "relative L1",
            XStart = 1,
        });
        var texts = XDocument.Parse(svg).Descendants().Where(e => e.Name.LocalName == "text").Select(e => e.Value.Trim()).ToList();
        Assert.Contains("Relative L1 change", texts);
        Assert.Contains("step (compared with step - 1)", texts);
        Assert.Contains("block", texts);
        Assert.Contains("relative L1", texts);
        // Every block is labelled (12 rows have room); steps at round intervals starting from XStart's multiples.
        for (int b = 0; b < 12; b++)
            Assert.Contains(b.ToString(System.Globalization.CultureInfo.InvariantCulture), texts);
        Assert.Contains("5", texts);
        Assert.Contains("45", texts);
        Assert.DoesNotContain("50", texts);
        // The colour bar: its ends' labels, and the cells and the bar as images.
        Assert.Contains("0.0", texts);
        Assert.Contains("11.5", texts);
        Assert.True(XDocument.Parse(svg).Descendants().Count(e => e.Name.LocalName == "image") >= 2);
    }

    [Fact]
    public void Clipped_scale_maps_the_outlier_to_the_top_colour_and_spreads_the_rest()
    {
        // 19 values 0.00 … 0.18 and one outlier 100.
        var values = new double[4, 5];
        for (int i = 0; i < 20; i++)
            values[i / 5, i % 5] = i < 19 ? 0.01 * i : 100;
        var linear = Render(values);
        var clipped = Render(values, new HeatmapOptions { Scale = ColorScale.Clip(94) });
        const int cellArea = 100 * 60;   // cells are about 140 × 95 pixels
        // Linear: 0.18 / 100 keeps every ordinary value in the lowest 0.2 % of the map, one or two colours.
        Assert.InRange(linear.LargeAreas(cellArea).Count(c => c != Rgb.White), 2, 3);
        // Clipped to percentiles 6-94 (numpy: 0.0114 and 0.1786): the outlier takes the top colour, the rest spread out.
        Assert.True(clipped.Count(Heatmap.ColorAt(1)) >= cellArea);
        Assert.True(clipped.LargeAreas(cellArea).Count(c => c != Rgb.White) >= 17);
        var (lo, hi) = Heatmap.ColorRange(values, new HeatmapOptions { Scale = ColorScale.Clip(94) });
        Assert.Equal(0.0114, lo, 12);
        Assert.Equal(0.1786, hi, 12);
    }

    [Fact]
    public void Colour_scales_parse_and_map_as_documented()
    {
        Assert.Equal(ColorScale.Linear, ColorScale.Parse("linear"));
        Assert.Equal(ColorScale.Log, ColorScale.Parse(" LOG "));
        Assert.Equal(new ColorScale(ColorScaleKind.Clip, 99.5), ColorScale.Parse("clip:99.5"));
        Assert.Equal("clip:98", ColorScale.Clip98.ToString());
        foreach (string bad in new[] { "", "clip", "clip:50", "clip:101", "clip:x", "quadratic" })
            Assert.Throws<ArgumentException>(() => ColorScale.Parse(bad));

        // numpy.percentile(range(1, 101), [1, 99]) = 1.99, 99.01
        var hundred = new double[1, 100];
        for (int i = 0; i < 100; i++)
            hundred[0, i] = i + 1;
        var (lo, hi) = ColorScale.Clip(99).Range(hundred);
        Assert.Equal(1.99, lo, 12);
        Assert.Equal(99.01, hi, 12);

        // Log: positions are linear in log10, non-positive values take the low end and do not set the range.
        var log = ColorScale.Log;
        Assert.Equal((0.01, 100.0), log.Range(new double[,] { { 0.01, -5, 0, 100, double.NaN } }));
        Assert.Equal(0.5, log.Position(1, 0.01, 100), 12);
        Assert.Equal(0.75, log.Position(10, 0.01, 100), 12);
        Assert.Equal(0, log.Position(-1, 0.01, 100));
        Assert.True(double.IsNaN(log.Position(double.NaN, 0.01, 100)));
        Assert.Throws<ArgumentException>(() => log.Range(new double[,] { { 1 } }, min: 0));
        Assert.Equal(1, ColorScale.Linear.Position(double.PositiveInfinity, 0, 1));
    }

    [Fact]
    public void Cache_window_is_marked()
    {
        var values = new double[12, 49];
        for (int b = 0; b < 12; b++)
            for (int k = 0; k < 49; k++)
                values[b, k] = 0.001 * k * (b + 1);
        var plain = new HeatmapOptions { XStart = 1, Scale = ColorScale.Clip98 };
        var marked = plain with
        {
            Outlines = [new HeatmapOutline(20, 45, 0, 8)],
            OutlineLabel = "cache window",
            Markers = [(21, 0), (23, 0)],
            MarkerLabel = "reuse steps",
            RowRule = 9,
            RowRuleLabel = "boundary 9",
        };
        Assert.Equal(0, Render(values, plain).Count(Heatmap.MarkColor));
        var image = Render(values, marked);
        Assert.True(image.Count(Heatmap.MarkColor) > 1500, $"{image.Count(Heatmap.MarkColor)} mark pixels");
        string svg = Heatmap.ToSvg(values, marked);
        Assert.Contains("cache window", svg, StringComparison.Ordinal);
        Assert.Contains("reuse steps", svg, StringComparison.Ordinal);
        Assert.Contains("boundary 9", svg, StringComparison.Ordinal);

        var plan = new StepPlan("FFCRCRFF".Select(c => c switch { 'C' => StepKind.Cache, 'R' => StepKind.Reuse, _ => StepKind.Full }), 3, 4);
        var window = CacheWindow.FromPlan(plan, "p")!;
        Assert.Equal((2, 5, 3, "p"), (window.First, window.Last, window.Boundary, window.Policy));
        Assert.Equal([3, 5], window.ReuseSteps);
        Assert.Null(CacheWindow.FromPlan(StepPlan.AllFull(8, 4), "none"));
    }

    [Fact]
    public void Rejects_bad_input()
    {
        Assert.Throws<ArgumentException>(() => Heatmap.EncodePng(new double[0, 3]));
        Assert.Throws<ArgumentException>(() => Heatmap.EncodePng(new double[,] { { 1 } }, new HeatmapOptions { Min = 2, Max = 1 }));
        Assert.Throws<ArgumentException>(() => Heatmap.EncodePng(new double[,] { { 1 } }, new HeatmapOptions { Width = 50 }));
        Assert.Throws<ArgumentException>(() => Viridis.Map(double.NaN));
    }

    [Fact]
    public void Scale_labels_show_the_ends_and_round_values()
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
    public void Viridis_has_its_published_ends_and_middle()
    {
        Assert.Equal(Rgb.FromHex("#440154"), Viridis.Map(0));
        Assert.Equal(Rgb.FromHex("#21918C"), Viridis.Map(0.5));
        Assert.Equal(Rgb.FromHex("#FDE725"), Viridis.Map(1));
        Assert.Equal(Viridis.Map(0), Viridis.Map(-4));
        // Perceptually ordered: luminance rises monotonically along the table.
        double Luma(Rgb c) => 0.2126 * c.R + 0.7152 * c.G + 0.0722 * c.B;
        for (int i = 1; i < 256; i++)
            Assert.True(Luma(Viridis.Entry(i)) > Luma(Viridis.Entry(i - 1)) - 0.5, $"entry {i}");
        // The heatmaps draw with it: ScottPlot gets the same colours (and transparent for NaN).
        var middle = Viridis.Instance.GetColor(0.5);
        Assert.Equal(Viridis.Map(0.5), new Rgb(middle.R, middle.G, middle.B));
        Assert.Equal(0, Viridis.Instance.GetColor(double.NaN).A);
    }
}

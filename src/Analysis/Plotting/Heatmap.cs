using System.Globalization;
using BlockDance.Runtime.Imaging;
using BlockDance.Runtime.IO;
using ScottPlot;

namespace BlockDance.Analysis.Plotting;

/// <summary>A rectangle of cells outlined on a <see cref="Heatmap"/>, in axis values (tick numbers), both ends inclusive.</summary>
/// <param name="XFrom">First column's axis value.</param>
/// <param name="XTo">Last column's axis value.</param>
/// <param name="YFrom">First row's axis value.</param>
/// <param name="YTo">Last row's axis value.</param>
public sealed record HeatmapOutline(int XFrom, int XTo, int YFrom, int YTo);

/// <summary>What a <see cref="Heatmap"/> shows besides the cells.</summary>
public sealed record HeatmapOptions
{
    /// <summary>Drawn centred above the plot.</summary>
    public string Title { get; init; } = "";

    /// <summary>Label under the x axis (the columns).</summary>
    public string XLabel { get; init; } = "";

    /// <summary>Label left of the y axis (the rows), reading upwards.</summary>
    public string YLabel { get; init; } = "";

    /// <summary>Label beside the colour bar; the scale is named after it unless it is linear.</summary>
    public string ColorBarLabel { get; init; } = "";

    /// <summary>Tick value of column 0 (column c is labelled <c>XStart + c</c>).</summary>
    public int XStart { get; init; }

    /// <summary>Tick value of row 0 (row r is labelled <c>YStart + r</c>).</summary>
    public int YStart { get; init; }

    /// <summary>Value drawn as the colour map's low end; null for the <see cref="Scale"/>'s. Smaller values are clamped.</summary>
    public double? Min { get; init; }

    /// <summary>Value drawn as the colour map's high end; null for the <see cref="Scale"/>'s. Larger values are clamped.</summary>
    public double? Max { get; init; }

    /// <summary>How values map to colours (linear over the data by default).</summary>
    public ColorScale Scale { get; init; } = ColorScale.Linear;

    /// <summary>Draws row 0 at the bottom (a y axis growing upwards) instead of at the top (matrix convention, the default).</summary>
    public bool RowZeroAtBottom { get; init; }

    /// <summary>Width of the whole figure in pixels (the SVG's user units).</summary>
    public int Width { get; init; } = 900;

    /// <summary>Height of the whole figure in pixels (the SVG's user units).</summary>
    public int Height { get; init; } = 500;

    /// <summary>Cell ranges to outline (e.g. the cache window); explained in the legend by <see cref="OutlineLabel"/>.</summary>
    public IReadOnlyList<HeatmapOutline> Outlines { get; init; } = [];

    /// <summary>Legend text of <see cref="Outlines"/>.</summary>
    public string OutlineLabel { get; init; } = "";

    /// <summary>Cells (axis values) marked with a dot (e.g. the steps that reuse the cache); explained by <see cref="MarkerLabel"/>.</summary>
    public IReadOnlyList<(int X, int Y)> Markers { get; init; } = [];

    /// <summary>Legend text of <see cref="Markers"/>.</summary>
    public string MarkerLabel { get; init; } = "";

    /// <summary>Draws a dashed line between the rows with axis values <c>RowRule − 1</c> and <c>RowRule</c> (e.g. the cache boundary).</summary>
    public int? RowRule { get; init; }

    /// <summary>Legend text of <see cref="RowRule"/>.</summary>
    public string RowRuleLabel { get; init; } = "";
}

/// <summary>
/// Renders a matrix as a readable heatmap with ScottPlot: cells coloured by viridis through a <see cref="ColorScale"/>,
/// a title, integer ticks on both axes (step and block numbers, at round intervals), axis labels, a colour bar
/// labelled in data units, optional marks (outlined cell ranges, marked cells, a rule between rows) with a legend.
/// NaN cells mean "no data": they are drawn light gray and the legend explains them. ±∞ cells take the nearer end's colour.
/// Written as PNG or SVG (text stays text in the SVG).
/// </summary>
/// <remarks>
/// The text is set in DejaVu Sans from Debian's <c>fonts-dejavu-core</c> (installed by <c>eng/install-deps.sh</c>),
/// loaded from its file so that the figures do not depend on which other fonts a machine has; without it the platform's
/// sans-serif font is used, and with no font at all a <see cref="BlockDance.Runtime.BlockDanceException"/> says what to install.
/// </remarks>
public static class Heatmap
{
    /// <summary>Colour of NaN ("no data") cells: a neutral light gray that viridis never produces.</summary>
    public static Rgb NoDataColor => new(200, 200, 200);

    /// <summary>Colour of the marks (outlines and the row rule): a red that stands out on every viridis colour.</summary>
    public static Rgb MarkColor => new(230, 30, 30);

    /// <summary>The colour map's colour at <paramref name="position"/> in [0, 1] (<see cref="Viridis"/>; clamped).</summary>
    public static Rgb ColorAt(double position) => Viridis.Map(position);

    /// <summary>
    /// The values the colour scale's ends stand for: the options' <see cref="HeatmapOptions.Min"/>/<see cref="HeatmapOptions.Max"/>
    /// where given, else the <see cref="HeatmapOptions.Scale"/>'s range of the data (0 and 1 when nothing is finite).
    /// </summary>
    public static (double Min, double Max) ColorRange(double[,] values, HeatmapOptions? options = null)
    {
        options ??= new HeatmapOptions();
        return options.Scale.Range(values, options.Min, options.Max);
    }

    /// <summary>Renders <paramref name="values"/> and writes it atomically as PNG or SVG, chosen by the path's extension.</summary>
    /// <exception cref="ArgumentException">The extension is neither <c>.png</c> nor <c>.svg</c>, or the matrix or options are invalid.</exception>
    public static void Save(string path, double[,] values, HeatmapOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string extension = Path.GetExtension(path).ToLowerInvariant();
        byte[] bytes = extension switch
        {
            ".png" => EncodePng(values, options),
            ".svg" => System.Text.Encoding.UTF8.GetBytes(ToSvg(values, options)),
            _ => throw new ArgumentException($"heatmap '{path}': the file name must end in .png or .svg", nameof(path)),
        };
        AtomicFile.WriteAllBytes(path, bytes);
    }

    /// <summary>Renders <paramref name="values"/> (rows × columns) as a PNG file's bytes of the options' size.</summary>
    /// <exception cref="ArgumentException">The matrix is empty, or the options are out of range.</exception>
    public static byte[] EncodePng(double[,] values, HeatmapOptions? options = null)
    {
        options ??= new HeatmapOptions();
        return Build(values, options).GetImageBytes(options.Width, options.Height, ImageFormat.Png);
    }

    /// <summary>Renders <paramref name="values"/> (rows × columns) as an SVG document of the options' size.</summary>
    /// <exception cref="ArgumentException">The matrix is empty, or the options are out of range.</exception>
    public static string ToSvg(double[,] values, HeatmapOptions? options = null)
    {
        options ??= new HeatmapOptions();
        return Build(values, options).GetSvgXml(options.Width, options.Height);
    }

    private static Plot Build(double[,] values, HeatmapOptions options)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(options);
        int rows = values.GetLength(0), columns = values.GetLength(1);
        if (rows == 0 || columns == 0)
            throw new ArgumentException($"cannot draw an empty {rows} × {columns} matrix", nameof(values));
        if (options.Width is < 100 or > 10_000 || options.Height is < 100 or > 10_000)
            throw new ArgumentException($"the figure size must be in [100, 10000] pixels each way, not {options.Width} × {options.Height}", nameof(options));
        var (lo, hi) = ColorRange(values, options);
        var scale = options.Scale;

        // Cells hold their colour-map positions, so every scale shares ScottPlot's linear [0, 1] mapping.
        var positions = new double[rows, columns];
        bool anyNaN = false, below = false, above = false;
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < columns; c++)
            {
                double v = values[r, c];
                positions[r, c] = scale.Position(v, lo, hi);
                anyNaN |= double.IsNaN(v);
                below |= v < lo;
                above |= v > hi;
            }
        }

        var plot = new Plot();
        plot.Font.Set(PlotFonts.Family);
        // ScottPlot cannot range a matrix without any number: a matrix of nothing but "no data" is drawn in that colour.
        bool allNaN = positions.Cast<double>().All(double.IsNaN);
        var heatmap = plot.Add.Heatmap(allNaN ? new double[rows, columns] : positions);
        heatmap.Colormap = allNaN ? new NoDataColormap() : Viridis.Instance;
        heatmap.ManualRange = new ScottPlot.Range(0, 1);
        heatmap.Smooth = false;
        heatmap.FlipVertically = options.RowZeroAtBottom;
        heatmap.NaNCellColor = ToColor(NoDataColor);

        var colorBar = plot.Add.ColorBar(heatmap);
        colorBar.Label = options.ColorBarLabel + scale.Kind switch
        {
            ColorScaleKind.Log => " (log scale)",
            ColorScaleKind.Clip when scale.Percentile < 100 =>
                string.Create(CultureInfo.InvariantCulture, $" (clipped to percentiles {100 - scale.Percentile:G4}-{scale.Percentile:G4})"),
            _ => "",
        };
        colorBar.Axis.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            BarTicks(scale, lo, hi, below, above).Select(t => new Tick(t.Position, t.Label, isMajor: true)).ToArray());

        if (options.Title.Length > 0)
            plot.Title(options.Title);
        plot.XLabel(options.XLabel);
        plot.YLabel(options.YLabel);
        plot.Axes.Bottom.TickGenerator = AxisTicks(columns, options.XStart, c => c, options.Width / 45);
        plot.Axes.Left.TickGenerator = AxisTicks(rows, options.YStart, r => RowY(r, rows, options), options.Height / 40);
        plot.HideGrid();
        plot.Axes.SetLimits(-0.5, columns - 0.5, -0.5, rows - 0.5);

        // The marks; the legend explains each kind once (with a symbol drawn like the mark).
        var mark = ToColor(MarkColor);
        var legend = plot.Legend.ManualItems;
        foreach (var o in options.Outlines)
        {
            double x0 = o.XFrom - options.XStart - 0.5, x1 = o.XTo - options.XStart + 0.5;
            double ya = RowY(o.YFrom - options.YStart, rows, options), yb = RowY(o.YTo - options.YStart, rows, options);
            var rectangle = plot.Add.Rectangle(x0, x1, Math.Min(ya, yb) - 0.5, Math.Max(ya, yb) + 0.5);
            rectangle.FillColor = Colors.Transparent;
            rectangle.LineColor = mark;
            rectangle.LineWidth = 2.5f;
        }
        if (options.Outlines.Count > 0 && options.OutlineLabel.Length > 0)
            legend.Add(new LegendItem { LabelText = options.OutlineLabel, FillColor = Colors.Transparent, OutlineColor = mark, OutlineWidth = 2.5f });
        if (options.Markers.Count > 0)
        {
            var markers = plot.Add.Markers(
                options.Markers.Select(m => new Coordinates(m.X - options.XStart, RowY(m.Y - options.YStart, rows, options))).ToArray(),
                MarkerShape.FilledCircle, 8, mark);
            markers.MarkerStyle.LineColor = Colors.White;
            markers.MarkerStyle.LineWidth = 1.5f;
            if (options.MarkerLabel.Length > 0)
                legend.Add(new LegendItem
                {
                    LabelText = options.MarkerLabel,
                    MarkerShape = MarkerShape.FilledCircle,
                    MarkerSize = 8,
                    MarkerFillColor = mark,
                    MarkerLineColor = Colors.White,
                    MarkerLineWidth = 1.5f,
                });
        }
        if (options.RowRule is int rule)
        {
            int r = rule - options.YStart;
            double y = options.RowZeroAtBottom ? r - 0.5 : rows - r - 0.5;
            plot.Add.HorizontalLine(y, 2.5f, mark, LinePattern.Dashed);
            if (options.RowRuleLabel.Length > 0)
                legend.Add(new LegendItem { LabelText = options.RowRuleLabel, LineColor = mark, LineWidth = 2.5f, LinePattern = LinePattern.Dashed });
        }
        if (anyNaN)
            legend.Add(new LegendItem { LabelText = "no data", FillColor = ToColor(NoDataColor), OutlineColor = Colors.Black, OutlineWidth = 1 });
        if (legend.Count > 0)
        {
            plot.ShowLegend(Edge.Bottom);
            plot.Legend.Orientation = Orientation.Horizontal;
        }
        return plot;
    }

    /// <summary>The y coordinate of row <paramref name="row"/> (0-based index): rows count down from the top unless row zero is at the bottom.</summary>
    private static double RowY(int row, int rows, HeatmapOptions options) => options.RowZeroAtBottom ? row : rows - 1 - row;

    /// <summary>
    /// Integer ticks along an axis of <paramref name="count"/> cells whose first has value <paramref name="start"/>: the
    /// cells whose value is a multiple of the smallest interval in 1, 2, 5, 10, 20, 50, … that keeps at most
    /// <paramref name="maxTicks"/> labels; the first cell if no value is such a multiple.
    /// </summary>
    private static ScottPlot.TickGenerators.NumericManual AxisTicks(int count, int start, Func<int, double> coordinate, int maxTicks)
    {
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        foreach (int i in IntegerTicks(start, count, Math.Max(2, maxTicks)))
            ticks.Add(new Tick(coordinate(i), (start + i).ToString(CultureInfo.InvariantCulture), isMajor: true));
        return ticks;
    }

    /// <summary>Indices of the cells to label: see <see cref="AxisTicks"/>.</summary>
    internal static List<int> IntegerTicks(int start, int count, int maxTicks)
    {
        long step = 1;
        for (int k = 0; (count + step - 1) / step > maxTicks; k++)
            step = (k % 3) switch { 1 => step / 2 * 5, _ => step * 2 };
        var ticks = new List<int>();
        for (int i = 0; i < count; i++)
            if ((start + (long)i) % step == 0)
                ticks.Add(i);
        if (ticks.Count == 0)
            ticks.Add(0);
        return ticks;
    }

    /// <summary>
    /// The colour bar's labelled values as (position on the bar in [0, 1], text): for linear and clipped scales those of
    /// <see cref="ScaleTicks"/>, the ends marked ≤ / ≥ when values beyond them were clamped; for a log scale the ends
    /// and the 1, 2, 5 × 10^k between them (only the powers of ten when the range spans more than two decades).
    /// </summary>
    private static List<(double Position, string Label)> BarTicks(ColorScale scale, double lo, double hi, bool below, bool above)
    {
        List<(double Position, string Label)> ticks;
        if (scale.Kind != ColorScaleKind.Log || lo == hi)
            ticks = ScaleTicks(lo, hi, minGapFraction: 0.06);
        else
        {
            ticks = [(0, Number(lo)), (1, Number(hi))];
            double decades = Math.Log10(hi / lo);
            double[] mantissas = decades > 2 ? [1] : [1, 2, 5];
            for (int e = (int)Math.Floor(Math.Log10(lo)); e <= (int)Math.Ceiling(Math.Log10(hi)); e++)
            {
                foreach (double m in mantissas)
                {
                    double v = m * Math.Pow(10, e);
                    double p = scale.Position(v, lo, hi);
                    if (v > lo && v < hi && p >= 0.06 && p <= 0.94)
                        ticks.Add((p, Number(v)));
                }
            }
        }
        for (int i = 0; i < ticks.Count; i++)
        {
            if (below && ticks[i].Position == 0)
                ticks[i] = (0, "≤ " + ticks[i].Label);
            if (above && ticks[i].Position == 1)
                ticks[i] = (1, "≥ " + ticks[i].Label);
        }
        return ticks;
    }

    private static string Number(double v) => v.ToString("G3", CultureInfo.InvariantCulture);

    /// <summary>
    /// The colour bar's labels as (fraction of the bar from the bottom, text): the minimum and the maximum, printed with
    /// two significant digits of the range beyond their difference, and between them the multiples of a round step
    /// (1, 2, 2.5 or 5 × 10^k, at most about five intervals) that keep at least <paramref name="minGapFraction"/> of
    /// the bar away from each other and from the ends. Scales beyond ±10⁷ or finer than 10⁻⁶ use exponent notation.
    /// </summary>
    internal static List<(double Fraction, string Label)> ScaleTicks(double lo, double hi, double minGapFraction)
    {
        double range = hi - lo;
        double magnitude = Math.Max(Math.Abs(lo), Math.Abs(hi));
        bool exponent = magnitude >= 1e7 || (range > 0 && range < 1e-6 * Math.Max(1, magnitude)) || (range == 0 && magnitude != 0 && magnitude < 1e-4);
        string Text(double v, int decimals) => exponent
            ? v.ToString("0.###E+0", CultureInfo.InvariantCulture)
            : Clean(v.ToString("F" + Math.Clamp(decimals, 0, 8), CultureInfo.InvariantCulture));
        if (range == 0)
            return [(0.5, Text(lo, 3))];

        int endDecimals = (int)Math.Ceiling(-Math.Log10(range)) + 2;
        var ticks = new List<(double Fraction, string Label)> { (0, Text(lo, endDecimals)), (1, Text(hi, endDecimals)) };

        // The round step: the smallest of 1, 2, 2.5, 5 × 10^k that divides the range into at most 5 intervals.
        double power = Math.Pow(10, Math.Floor(Math.Log10(range / 5)));
        double step = new[] { 1, 2, 2.5, 5, 10 }.Select(m => m * power).First(candidate => range / candidate <= 5 + 1e-9);
        int exponentOfStep = (int)Math.Floor(Math.Log10(step) + 1e-9);
        bool quarter = Math.Abs(step / Math.Pow(10, exponentOfStep) - 2.5) < 1e-9;   // 2.5 × 10^k needs one more digit
        int stepDecimals = Math.Max(0, -exponentOfStep + (quarter ? 1 : 0));
        for (long i = (long)Math.Ceiling(lo / step); i * step < hi; i++)
        {
            double v = i * step;
            double fraction = (v - lo) / range;
            if (fraction >= minGapFraction && fraction <= 1 - minGapFraction)
                ticks.Add((fraction, Text(v, stepDecimals)));
        }
        return ticks;
    }

    /// <summary>"-0.00" → "0.00".</summary>
    private static string Clean(string number) =>
        number.StartsWith('-') && number.Skip(1).All(ch => ch is '0' or '.') ? number[1..] : number;

    private static Color ToColor(Rgb c) => new(c.R, c.G, c.B);

    /// <summary>Every position in the no-data colour.</summary>
    private sealed class NoDataColormap : IColormap
    {
        public string Name => "no data";

        public Color GetColor(double position) => ToColor(NoDataColor);
    }
}

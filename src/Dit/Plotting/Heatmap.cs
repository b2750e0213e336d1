using System.Globalization;
using BlockDance.Runtime.Imaging;

namespace BlockDance.Dit.Plotting;

/// <summary>What a <see cref="Heatmap"/> shows besides the cells.</summary>
public sealed record HeatmapOptions
{
    /// <summary>Drawn bold, centred above the plot.</summary>
    public string Title { get; init; } = "";

    /// <summary>Label under the x axis (the columns).</summary>
    public string XLabel { get; init; } = "";

    /// <summary>Label left of the y axis (the rows), reading upwards.</summary>
    public string YLabel { get; init; } = "";

    /// <summary>Label beside the colour bar, reading upwards.</summary>
    public string ColorBarLabel { get; init; } = "";

    /// <summary>Tick value of column 0 (column c is labelled <c>XStart + c</c>).</summary>
    public int XStart { get; init; }

    /// <summary>Tick value of row 0 (row r is labelled <c>YStart + r</c>).</summary>
    public int YStart { get; init; }

    /// <summary>Value drawn as the colour map's low end; null for the smallest finite value. Smaller values are clamped.</summary>
    public double? Min { get; init; }

    /// <summary>Value drawn as the colour map's high end; null for the largest finite value. Larger values are clamped.</summary>
    public double? Max { get; init; }

    /// <summary>Draws row 0 at the bottom (a y axis growing upwards) instead of at the top (matrix convention, the default).</summary>
    public bool RowZeroAtBottom { get; init; }

    /// <summary>Minimum width of the cell area in pixels; cells are widened (whole pixels) to reach it.</summary>
    public int MinPlotWidth { get; init; } = 500;

    /// <summary>Integer magnification of the 5 × 9 <see cref="BitmapFont"/>; 2 gives 10 × 14-pixel capitals.</summary>
    public int TextScale { get; init; } = 2;
}

/// <summary>
/// Renders a matrix as a readable heatmap image: cells coloured by <see cref="Viridis"/>, a bold title, x and y axes
/// with tick marks and tick numbers (at round intervals that never overlap), axis labels, and a colour bar on the right
/// labelled with the exact minimum and maximum and round values between them. NaN cells mean "no data": they are drawn
/// light gray and a legend entry explains them. ±∞ cells take the colour of the nearer end of the scale.
/// </summary>
/// <remarks>
/// Layout: cells are whole pixels, at least <see cref="HeatmapOptions.MinPlotWidth"/> (500) wide in all, square where
/// that keeps the plot between 200 and 600 pixels tall, otherwise stretched or squeezed vertically into that band; the
/// margins are sized from the text they hold. The BlockDance analysis uses it for the block × step similarity (Fig. 2:
/// x = step, y = block) and the step × step similarity matrix (Fig. 5).
/// </remarks>
public static class Heatmap
{
    /// <summary>Colour of NaN ("no data") cells: a neutral light gray that viridis never produces.</summary>
    public static Rgb NoDataColor => new(200, 200, 200);

    private static readonly Rgb Ink = new(20, 20, 20);
    private static readonly Rgb Background = Rgb.White;
    private const int Margin = 12, TickLength = 5, Gap = 6, BarWidth = 24, BarGap = 24;

    /// <summary>Renders and writes <paramref name="values"/> as a PNG file, atomically.</summary>
    public static void Save(string path, double[,] values, HeatmapOptions? options = null) =>
        Render(values, options).SavePng(path);

    /// <summary>
    /// The colour scale's ends: the options' <see cref="HeatmapOptions.Min"/>/<see cref="HeatmapOptions.Max"/> where
    /// given, else the finite extremes of the data (0 and 1 when nothing is finite).
    /// </summary>
    public static (double Min, double Max) ColorRange(double[,] values, HeatmapOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(values);
        options ??= new HeatmapOptions();
        double lo = double.PositiveInfinity, hi = double.NegativeInfinity;
        foreach (double v in values)
        {
            if (double.IsFinite(v))
            {
                lo = Math.Min(lo, v);
                hi = Math.Max(hi, v);
            }
        }
        if (lo > hi)
            (lo, hi) = (0, 1);
        lo = options.Min ?? Math.Min(lo, options.Max ?? lo);
        hi = options.Max ?? Math.Max(hi, options.Min ?? hi);
        if (!double.IsFinite(lo) || !double.IsFinite(hi) || lo > hi)
            throw new ArgumentException($"the colour range [{lo}, {hi}] must be finite with min ≤ max");
        return (lo, hi);
    }

    /// <summary>Renders <paramref name="values"/> (rows × columns) as an RGB image.</summary>
    /// <exception cref="ArgumentException">The matrix is empty, or the options are out of range.</exception>
    public static RgbImage Render(double[,] values, HeatmapOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(values);
        options ??= new HeatmapOptions();
        int rows = values.GetLength(0), columns = values.GetLength(1);
        if (rows == 0 || columns == 0)
            throw new ArgumentException($"cannot draw an empty {rows} × {columns} matrix", nameof(values));
        if (options.TextScale is < 1 or > 8)
            throw new ArgumentException($"text scale must be in [1, 8], not {options.TextScale}", nameof(options));
        if (options.MinPlotWidth is < 1 or > 10_000)
            throw new ArgumentException($"minimum plot width must be in [1, 10000], not {options.MinPlotWidth}", nameof(options));
        var (lo, hi) = ColorRange(values, options);
        int s = options.TextScale;
        int capHeight = BitmapFont.CapHeight * s, lineHeight = BitmapFont.LineHeight(s);
        bool anyNaN = false;
        foreach (double v in values)
            anyNaN |= double.IsNaN(v);

        // Cell size: whole pixels, a plot at least MinPlotWidth wide and 200–600 tall, square cells where possible.
        int cellWidth = Math.Max(1, CeilDiv(options.MinPlotWidth, columns));
        int minCellHeight = Math.Max(1, CeilDiv(200, rows));
        int cellHeight = Math.Clamp(cellWidth, minCellHeight, Math.Max(minCellHeight, CeilDiv(600, rows)));
        int plotWidth = checked(columns * cellWidth), plotHeight = checked(rows * cellHeight);

        // Ticks at round intervals, spaced so that neighbouring labels never touch.
        var xTicks = Ticks(options.XStart, columns, cellWidth, v => BitmapFont.MeasureWidth(Label(v), s) + 4 * s);
        var yTicks = Ticks(options.YStart, rows, cellHeight, _ => capHeight + 4 * s);
        int yTickWidth = yTicks.Max(t => BitmapFont.MeasureWidth(Label(options.YStart + t), s));

        // Colour-bar labels: the exact ends and round values between them.
        var barTicks = ScaleTicks(lo, hi, minGapFraction: (capHeight + 3.0 * s) / Math.Max(1, plotHeight - 1));
        int barLabelWidth = barTicks.Max(t => BitmapFont.MeasureWidth(t.Label, s));
        string noData = "no data";

        // Horizontal layout.
        int yLabelWidth = options.YLabel.Length > 0 ? lineHeight + Gap : 0;
        int plotLeft = Margin + yLabelWidth + yTickWidth + Gap / 2 + TickLength;
        int plotRight = plotLeft + plotWidth;
        int barLeft = plotRight + BarGap;
        int barLabelsLeft = barLeft + BarWidth + TickLength + Gap / 2;
        int right = barLabelsLeft + barLabelWidth;
        if (options.ColorBarLabel.Length > 0)
            right += Gap + lineHeight;
        if (anyNaN)
            right = Math.Max(right, barLeft + capHeight + Gap + BitmapFont.MeasureWidth(noData, s));
        int titleWidth = BitmapFont.MeasureWidth(options.Title, s) + 1; // +1: drawn bold by a one-pixel offset
        int width = Math.Max(right + Margin, titleWidth + 2 * Margin);

        // Vertical layout; the colour bar's top label sticks out above the plot by half a cap height.
        int titleHeight = options.Title.Length > 0 ? lineHeight + Gap : 0;
        int plotTop = Margin + titleHeight + capHeight / 2 + Gap / 2;
        int plotBottom = plotTop + plotHeight;
        int xTickLabelsTop = plotBottom + TickLength + Gap / 2;
        int xLabelTop = xTickLabelsTop + capHeight + Gap;
        int bottom = options.XLabel.Length > 0 || anyNaN ? xLabelTop + lineHeight : xTickLabelsTop + capHeight;
        int height = Math.Max(bottom + Margin, plotBottom + capHeight / 2 + Margin);

        var image = new RgbImage(width, height, Background);

        // Title, centred over the plot where the image allows.
        if (options.Title.Length > 0)
        {
            int x = Math.Clamp(plotLeft + (plotWidth - titleWidth) / 2, Margin, width - Margin - titleWidth);
            BitmapFont.Draw(image, x, Margin, options.Title, Ink, s);
            BitmapFont.Draw(image, x + 1, Margin, options.Title, Ink, s);
        }

        // Cells.
        for (int r = 0; r < rows; r++)
        {
            int top = plotTop + (options.RowZeroAtBottom ? rows - 1 - r : r) * cellHeight;
            for (int c = 0; c < columns; c++)
            {
                double v = values[r, c];
                var color = double.IsNaN(v) ? NoDataColor : Viridis.Map(lo == hi ? 0.5 : (v - lo) / (hi - lo));
                image.FillRectangle(plotLeft + c * cellWidth, top, cellWidth, cellHeight, color);
            }
        }
        image.DrawRectangle(plotLeft - 1, plotTop - 1, plotWidth + 2, plotHeight + 2, Ink);

        // x axis: ticks and labels centred under the columns, then the axis label centred under the plot.
        foreach (int c in xTicks)
        {
            int x = plotLeft + c * cellWidth + cellWidth / 2;
            image.FillRectangle(x, plotBottom + 1, 1, TickLength, Ink);
            string label = Label(options.XStart + c);
            BitmapFont.Draw(image, x - BitmapFont.MeasureWidth(label, s) / 2, xTickLabelsTop, label, Ink, s);
        }
        if (options.XLabel.Length > 0)
            BitmapFont.Draw(image, plotLeft + (plotWidth - BitmapFont.MeasureWidth(options.XLabel, s)) / 2, xLabelTop, options.XLabel, Ink, s);

        // y axis: ticks and right-aligned labels at the rows' centres, then the rotated axis label.
        foreach (int r in yTicks)
        {
            int y = plotTop + (options.RowZeroAtBottom ? rows - 1 - r : r) * cellHeight + cellHeight / 2;
            image.FillRectangle(plotLeft - 1 - TickLength, y, TickLength, 1, Ink);
            string label = Label(options.YStart + r);
            BitmapFont.Draw(image, plotLeft - 1 - TickLength - Gap / 2 - BitmapFont.MeasureWidth(label, s), y - capHeight / 2, label, Ink, s);
        }
        if (options.YLabel.Length > 0)
        {
            int length = BitmapFont.MeasureWidth(options.YLabel, s);
            BitmapFont.DrawVertical(image, Margin, plotTop + (plotHeight + length) / 2, options.YLabel, Ink, s);
        }

        // Colour bar: low at the bottom, high at the top, with its labelled values.
        for (int j = 0; j < plotHeight; j++)
        {
            double t = plotHeight == 1 ? 0.5 : 1 - (double)j / (plotHeight - 1);
            image.FillRectangle(barLeft, plotTop + j, BarWidth, 1, Viridis.Map(t));
        }
        image.DrawRectangle(barLeft - 1, plotTop - 1, BarWidth + 2, plotHeight + 2, Ink);
        foreach (var (fraction, label) in barTicks)
        {
            int y = plotTop + (int)Math.Round((1 - fraction) * (plotHeight - 1));
            image.FillRectangle(barLeft + BarWidth + 1, y, TickLength, 1, Ink);
            BitmapFont.Draw(image, barLabelsLeft, y - capHeight / 2, label, Ink, s);
        }
        if (options.ColorBarLabel.Length > 0)
        {
            int length = BitmapFont.MeasureWidth(options.ColorBarLabel, s);
            BitmapFont.DrawVertical(image, barLabelsLeft + barLabelWidth + Gap, plotTop + (plotHeight + length) / 2, options.ColorBarLabel, Ink, s);
        }

        // Legend for NaN cells, under the colour bar on the x label's line (clear of the bar's bottom label).
        if (anyNaN)
        {
            image.FillRectangle(barLeft, xLabelTop, capHeight, capHeight, NoDataColor);
            image.DrawRectangle(barLeft - 1, xLabelTop - 1, capHeight + 2, capHeight + 2, Ink);
            BitmapFont.Draw(image, barLeft + capHeight + Gap, xLabelTop, noData, Ink, s);
        }
        return image;
    }

    /// <summary>
    /// Indices to label along an axis of <paramref name="count"/> cells of <paramref name="cellSize"/> pixels whose
    /// first cell has value <paramref name="start"/>: the cells whose value is a multiple of the smallest interval in
    /// 1, 2, 5, 10, 20, 50, … that leaves room for each label; the first cell if no value is such a multiple.
    /// </summary>
    private static List<int> Ticks(int start, int count, int cellSize, Func<int, int> room)
    {
        int needed = Enumerable.Range(0, count).Max(i => room(start + i));
        long step = 1;
        for (int k = 0; step * cellSize < needed; k++)
            step = (k % 3) switch { 0 => step * 2, 1 => step / 2 * 5, _ => step * 2 };
        var ticks = new List<int>();
        for (int i = 0; i < count; i++)
            if ((start + (long)i) % step == 0)
                ticks.Add(i);
        if (ticks.Count == 0)
            ticks.Add(0);
        return ticks;
    }

    private static string Label(int value) => value.ToString(CultureInfo.InvariantCulture);

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

    private static int CeilDiv(int a, int b) => (a + b - 1) / b;
}

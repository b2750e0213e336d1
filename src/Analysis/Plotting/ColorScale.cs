using System.Globalization;

namespace BlockDance.Analysis.Plotting;

/// <summary>How a <see cref="ColorScale"/> maps values to the colour map.</summary>
public enum ColorScaleKind
{
    /// <summary>Linear from the smallest to the largest finite value.</summary>
    Linear,

    /// <summary>Linear in log₁₀ of the value, from the smallest positive to the largest value; values ≤ 0 take the low end.</summary>
    Log,

    /// <summary>Linear between two percentiles of the finite values; values outside take the nearer end's colour.</summary>
    Clip,
}

/// <summary>
/// The mapping of a heatmap's values to its colours: <c>linear</c>, <c>log</c>, or <c>clip:P</c> (linear between the
/// (100 − P)-th and the P-th percentile, so that a few outliers take the end colours instead of squeezing every other
/// value into one colour). Percentiles interpolate linearly between order statistics (numpy's default method).
/// </summary>
/// <param name="Kind">The mapping.</param>
/// <param name="Percentile">For <see cref="ColorScaleKind.Clip"/>: the upper percentile P in (50, 100]; the lower one is 100 − P.</param>
public sealed record ColorScale(ColorScaleKind Kind, double Percentile = 100)
{
    /// <summary>Linear over the whole finite range of the data.</summary>
    public static ColorScale Linear { get; } = new(ColorScaleKind.Linear);

    /// <summary>Logarithmic over the positive values of the data.</summary>
    public static ColorScale Log { get; } = new(ColorScaleKind.Log);

    /// <summary>Linear between the 2nd and 98th percentiles: what the analysis uses by default.</summary>
    public static ColorScale Clip98 { get; } = Clip(98);

    /// <summary>The syntax <see cref="Parse"/> accepts, for help texts.</summary>
    public const string Syntax = "linear, log, or clip:P (linear between the (100−P)-th and P-th percentile, P in (50, 100])";

    /// <summary>Linear between the (100 − <paramref name="percentile"/>)-th and the <paramref name="percentile"/>-th percentile.</summary>
    /// <exception cref="ArgumentException">The percentile is not in (50, 100].</exception>
    public static ColorScale Clip(double percentile)
    {
        if (!(percentile > 50 && percentile <= 100))
            throw new ArgumentException($"the clip percentile must be in (50, 100], not {percentile.ToString(CultureInfo.InvariantCulture)}");
        return new ColorScale(ColorScaleKind.Clip, percentile);
    }

    /// <summary>Reads <c>linear</c>, <c>log</c> or <c>clip:P</c> (e.g. <c>clip:99</c>).</summary>
    /// <exception cref="ArgumentException">The text is none of these, naming what was given.</exception>
    public static ColorScale Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string t = text.Trim().ToLowerInvariant();
        if (t == "linear")
            return Linear;
        if (t == "log")
            return Log;
        if (t.StartsWith("clip:", StringComparison.Ordinal) &&
            double.TryParse(t[5..], NumberStyles.Float, CultureInfo.InvariantCulture, out double p))
            return Clip(p);
        throw new ArgumentException($"unknown colour scale '{text}': use {Syntax}");
    }

    /// <summary>The scale as <see cref="Parse"/> reads it.</summary>
    public override string ToString() => Kind switch
    {
        ColorScaleKind.Log => "log",
        ColorScaleKind.Clip => "clip:" + Percentile.ToString(CultureInfo.InvariantCulture),
        _ => "linear",
    };

    /// <summary>
    /// The values the colour map's ends stand for, in data units: <paramref name="min"/>/<paramref name="max"/> where
    /// given, else from the finite values (positive ones for <see cref="ColorScaleKind.Log"/>) as the kind says; 0 and 1
    /// (1 and 10 for log) when there are none.
    /// </summary>
    /// <exception cref="ArgumentException">The resulting range is not finite with min ≤ max, or not positive for a log scale.</exception>
    public (double Min, double Max) Range(double[,] values, double? min = null, double? max = null)
    {
        ArgumentNullException.ThrowIfNull(values);
        var finite = new List<double>(values.Length);
        foreach (double v in values)
            if (double.IsFinite(v) && (Kind != ColorScaleKind.Log || v > 0))
                finite.Add(v);
        double lo, hi;
        if (finite.Count == 0)
            (lo, hi) = Kind == ColorScaleKind.Log ? (1.0, 10.0) : (0.0, 1.0);
        else if (Kind == ColorScaleKind.Clip)
        {
            finite.Sort();
            (lo, hi) = (PercentileOf(finite, 100 - Percentile), PercentileOf(finite, Percentile));
        }
        else
            (lo, hi) = (finite.Min(), finite.Max());
        lo = min ?? Math.Min(lo, max ?? lo);
        hi = max ?? Math.Max(hi, min ?? hi);
        if (!double.IsFinite(lo) || !double.IsFinite(hi) || lo > hi)
            throw new ArgumentException($"the colour range [{lo}, {hi}] must be finite with min ≤ max");
        if (Kind == ColorScaleKind.Log && lo <= 0)
            throw new ArgumentException($"a log colour scale needs a positive range, not [{lo}, {hi}]");
        return (lo, hi);
    }

    /// <summary>
    /// Where <paramref name="value"/> falls on the colour map for the range <c>[min, max]</c>: 0 at the low end, 1 at
    /// the high end, clamped (±∞ take the ends); NaN stays NaN ("no data"); a zero-width range puts every value at 0.5.
    /// </summary>
    public double Position(double value, double min, double max)
    {
        if (double.IsNaN(value))
            return double.NaN;
        if (Kind == ColorScaleKind.Log)
        {
            if (value <= 0)
                return 0;
            (value, min, max) = (Math.Log10(value), Math.Log10(min), Math.Log10(max));
        }
        if (max == min)
            return 0.5;
        return Math.Clamp((value - min) / (max - min), 0, 1);
    }

    /// <summary>The p-th percentile (0 … 100) of sorted values, interpolating linearly between neighbours.</summary>
    internal static double PercentileOf(IReadOnlyList<double> sorted, double p)
    {
        double rank = p / 100 * (sorted.Count - 1);
        int below = (int)Math.Floor(rank);
        int above = Math.Min(below + 1, sorted.Count - 1);
        return sorted[below] + (rank - below) * (sorted[above] - sorted[below]);
    }
}

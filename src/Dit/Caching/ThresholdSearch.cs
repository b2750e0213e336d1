using System.Globalization;

namespace BlockDance.Dit.Caching;

/// <summary>What <c>blockdance calibrate</c> aims for.</summary>
public enum CalibrationGoal
{
    /// <summary>The smallest threshold whose speed-up reaches the target (the best quality at that speed).</summary>
    Speedup,

    /// <summary>The largest threshold whose SSIM stays at or above the target (the most speed at that quality).</summary>
    Ssim,
}

/// <summary>One evaluated threshold: the speed-up (from MACs), the SSIM against the uncached images, and what else the caller measured.</summary>
/// <param name="Threshold">The threshold evaluated.</param>
/// <param name="Speedup">Ideal speed-up from the MACs saved (deterministic, so bisection converges).</param>
/// <param name="Ssim">Mean SSIM of the calibration images against their uncached versions.</param>
/// <param name="Psnr">Mean PSNR in dB (information only).</param>
/// <param name="MeasuredSpeedup">Wall-clock speed-up (information only).</param>
public readonly record struct CalibrationPoint(double Threshold, double Speedup, double Ssim, double Psnr, double MeasuredSpeedup);

/// <summary>
/// Finds an adaptive policy's threshold for a target by bisection: the threshold is doubled from a start until the
/// target is bracketed (at most <see cref="MaxExpansions"/> times), then the bracket is halved
/// <c>iterations</c> times. Speed-up grows and quality falls with the threshold for BWCache, TeaCache and FBCache
/// (more steps pass the test); where the measured curve is not monotone the answer still satisfies the target, as the
/// kept end of the bracket always does.
/// </summary>
public static class ThresholdSearch
{
    /// <summary>Doublings of the start threshold before the search gives up on reaching the target.</summary>
    public const int MaxExpansions = 10;

    /// <summary>
    /// Searches the threshold. <paramref name="evaluate"/> runs the calibration images at a threshold. Returns the
    /// answer (null when the target cannot be reached) and every point evaluated, in order.
    /// </summary>
    public static (CalibrationPoint? Answer, IReadOnlyList<CalibrationPoint> Points) Search(
        Func<double, CalibrationPoint> evaluate, CalibrationGoal goal, double target, double start, int iterations)
    {
        if (!(start > 0) || !double.IsFinite(start))
            throw new ArgumentOutOfRangeException(nameof(start), "the start threshold must be positive and finite");
        if (iterations < 0)
            throw new ArgumentOutOfRangeException(nameof(iterations), "iterations must be ≥ 0");
        var points = new List<CalibrationPoint>();
        CalibrationPoint Eval(double threshold)
        {
            var p = evaluate(threshold);
            points.Add(p);
            return p;
        }
        bool Good(CalibrationPoint p) => goal == CalibrationGoal.Speedup ? p.Speedup >= target : p.Ssim >= target;

        // The bracket: for speed-up, `high` reaches the target and `low` does not; for SSIM, `low` keeps it and `high` does not.
        CalibrationPoint low = Eval(0), high = Eval(start);
        if (goal == CalibrationGoal.Speedup && Good(low))
            return (low, points);                    // even the disabled policy is fast enough (target ≤ 1)
        if (goal == CalibrationGoal.Ssim && !Good(low))
            return (null, points);                   // cannot happen for a deterministic run (SSIM 1 at threshold 0)
        for (int e = 0; (goal == CalibrationGoal.Speedup) != Good(high); e++)
        {
            if (e == MaxExpansions)
                return (goal == CalibrationGoal.Ssim ? high : null, points);   // SSIM: even this large threshold keeps the quality
            low = high;
            high = Eval(high.Threshold * 2);
        }
        for (int i = 0; i < iterations; i++)
        {
            var mid = Eval((low.Threshold + high.Threshold) / 2);
            bool highSide = goal == CalibrationGoal.Speedup ? Good(mid) : !Good(mid);
            if (highSide)
                high = mid;
            else
                low = mid;
        }
        return (goal == CalibrationGoal.Speedup ? high : low, points);
    }

    /// <summary>The points as an aligned table, in threshold order.</summary>
    public static string Table(IEnumerable<CalibrationPoint> points)
    {
        var ci = CultureInfo.InvariantCulture;
        var lines = new List<string> { "threshold   speed-up (MACs)  measured  SSIM     PSNR" };
        foreach (var p in points.OrderBy(p => p.Threshold))
            lines.Add(string.Create(ci, $"{p.Threshold,-11:G5} {p.Speedup,-16:F3} {p.MeasuredSpeedup,-9:F3} {p.Ssim,-8:F4} {(double.IsFinite(p.Psnr) ? p.Psnr.ToString("F2", ci) + " dB" : "∞")}"));
        return string.Join('\n', lines);
    }
}

using BlockDance.Dit.Caching;

namespace BlockDance.Analysis.Metrics;

/// <summary>
/// The part of a cache plan that the analysis heatmaps mark: the steps from the first Cache step to the last Reuse
/// step, the steps that reuse, and the boundary block (a Reuse step skips blocks <c>0 … Boundary − 1</c>).
/// </summary>
/// <param name="First">First step of the window (the first step that fills the cache).</param>
/// <param name="Last">Last step of the window (the last step that reuses it).</param>
/// <param name="ReuseSteps">The steps that reuse the cache, ascending.</param>
/// <param name="Boundary">The boundary block i: reuse skips blocks <c>0 … i − 1</c> and starts at block i.</param>
/// <param name="Policy">The policy's name, for the legend (e.g. <c>blockdance:n=2</c>).</param>
public sealed record CacheWindow(int First, int Last, IReadOnlyList<int> ReuseSteps, int Boundary, string Policy)
{
    /// <summary>The window of <paramref name="plan"/>, or null when the plan never reuses the cache.</summary>
    public static CacheWindow? FromPlan(StepPlan plan, string policy)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var reuse = Enumerable.Range(0, plan.Steps).Where(k => plan[k] == StepKind.Reuse).ToArray();
        if (reuse.Length == 0)
            return null;
        int first = Enumerable.Range(0, plan.Steps).First(k => plan[k] == StepKind.Cache);
        return new CacheWindow(first, reuse[^1], reuse, plan.Boundary, policy);
    }
}

/// <summary>Which image files a report writes for each heatmap.</summary>
[Flags]
public enum PlotFormats
{
    /// <summary>A PNG image.</summary>
    Png = 1,

    /// <summary>An SVG document (vector; text stays text).</summary>
    Svg = 2,

    /// <summary>Both, with the same name.</summary>
    Both = Png | Svg,
}

/// <summary>How <see cref="SimilarityRecorder.WriteReport"/> draws its heatmaps.</summary>
public sealed record SimilarityReportOptions
{
    /// <summary>The colour scale of every heatmap; by default clipped to the 2nd–98th percentile, so that one outlier step does not flatten the rest.</summary>
    public Plotting.ColorScale Scale { get; init; } = Plotting.ColorScale.Clip98;

    /// <summary>The image files written per heatmap (PNG by default).</summary>
    public PlotFormats Formats { get; init; } = PlotFormats.Png;

    /// <summary>The cache window to mark on the heatmaps, or null for none.</summary>
    public CacheWindow? Window { get; init; }
}

using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using BlockDance.Dit.Caching;

namespace BlockDance.Dit.Pipeline;

/// <summary>What one sampling run did and cost: per-step kinds and times, block and MAC counts, cache bytes.</summary>
public sealed class RunReport
{
    internal RunReport(string device, string policy, StepPlan plan, MacCount macs, int modelBatch, int images, long cacheBytes)
    {
        Device = device;
        Policy = policy;
        Plan = plan;
        ModelBatch = modelBatch;
        Images = images;
        CacheBytes = cacheBytes;
        StepMilliseconds = new double[plan.Steps];
        MacsPerImageFull = macs.Forward;
        long perImage = 0;
        for (int k = 0; k < plan.Steps; k++)
            perImage += plan[k] == StepKind.Reuse ? macs.ReuseForward(plan.Boundary) : macs.Forward;
        MacsPerImageRun = perImage;
    }

    /// <summary>The device's name (cpu, cuda, cuda-emu).</summary>
    public string Device { get; }

    /// <summary>The cache policy, in its canonical syntax.</summary>
    public string Policy { get; }

    /// <summary>What each step did (Full, Cache, Reuse) and the cache boundary.</summary>
    public StepPlan Plan { get; }

    /// <summary>Batch the model runs on (twice the images with guidance).</summary>
    public int ModelBatch { get; }
    /// <summary>Images generated.</summary>
    public int Images { get; }

    /// <summary>Device memory of the feature cache (0 without one).</summary>
    public long CacheBytes { get; }

    /// <summary>Wall time of each step, in milliseconds.</summary>
    public double[] StepMilliseconds { get; }

    /// <summary>Wall time of all steps, in milliseconds.</summary>
    public double TotalMilliseconds { get; internal set; }

    /// <summary>MACs of one full forward of one batch item.</summary>
    public long MacsPerImageFull { get; }

    /// <summary>MACs of this run per batch item, all steps.</summary>
    public long MacsPerImageRun { get; }

    /// <summary>Multiply-accumulates of the whole run, every batch item.</summary>
    public long Macs => MacsPerImageRun * ModelBatch;

    /// <summary>Multiply-accumulates the run would cost without a cache.</summary>
    public long MacsWithoutCache => MacsPerImageFull * Plan.Steps * ModelBatch;

    /// <summary>Share of the MACs the cache saved, in [0, 1).</summary>
    public double MacsSavedFraction => 1.0 - (double)MacsPerImageRun / (MacsPerImageFull * Plan.Steps);

    /// <summary>The speed-up the saved MACs would give if time were proportional to MACs.</summary>
    public double IdealSpeedup => (double)MacsPerImageFull * Plan.Steps / MacsPerImageRun;

    /// <summary>The report as text: device, plan, blocks, MACs, cache memory, time per step kind.</summary>
    public string ToText()
    {
        var sb = new StringBuilder();
        var ci = CultureInfo.InvariantCulture;
        sb.AppendLine(ci, $"device {Device}, policy {Policy}, {Images} image(s), model batch {ModelBatch}");
        sb.AppendLine(ci, $"plan     {Plan.Letters}");
        sb.AppendLine(ci, $"blocks   {Plan.BlocksComputed} computed, {Plan.BlocksSkipped} skipped (boundary {Plan.Boundary} of {Plan.Depth})");
        sb.AppendLine(ci, $"MACs     {Macs / 1e9:F2} G of {MacsWithoutCache / 1e9:F2} G without cache ({MacsSavedFraction:P1} saved, ideal speed-up {IdealSpeedup:F3}x)");
        sb.AppendLine(ci, $"cache    {CacheBytes / 1048576.0:F2} MiB");
        foreach (var kind in new[] { StepKind.Full, StepKind.Cache, StepKind.Reuse })
        {
            var times = Enumerable.Range(0, Plan.Steps).Where(k => Plan[k] == kind).Select(k => StepMilliseconds[k]).ToArray();
            if (times.Length > 0)
                sb.AppendLine(ci, $"{kind,-8} {times.Length,3} steps, mean {times.Average():F2} ms, total {times.Sum():F1} ms");
        }
        sb.Append(ci, $"total    {TotalMilliseconds:F1} ms ({TotalMilliseconds / Plan.Steps:F2} ms per step)");
        return sb.ToString();
    }

    /// <summary>The report as indented JSON (<c>blockdance.report/1</c>, with every step's kind and time).</summary>
    public string ToJson()
    {
        var steps = new JsonArray();
        for (int k = 0; k < Plan.Steps; k++)
            steps.Add(new JsonObject { ["step"] = k, ["kind"] = Plan[k].ToString().ToLowerInvariant(), ["ms"] = Math.Round(StepMilliseconds[k], 4) });
        var o = new JsonObject
        {
            ["format"] = "blockdance.report/1",
            ["device"] = Device,
            ["policy"] = Policy,
            ["plan"] = Plan.Letters,
            ["boundary"] = Plan.Boundary,
            ["depth"] = Plan.Depth,
            ["images"] = Images,
            ["model_batch"] = ModelBatch,
            ["blocks_computed"] = Plan.BlocksComputed,
            ["blocks_skipped"] = Plan.BlocksSkipped,
            ["macs"] = Macs,
            ["macs_without_cache"] = MacsWithoutCache,
            ["macs_saved_fraction"] = Math.Round(MacsSavedFraction, 6),
            ["ideal_speedup"] = Math.Round(IdealSpeedup, 6),
            ["cache_bytes"] = CacheBytes,
            ["total_ms"] = Math.Round(TotalMilliseconds, 3),
            ["steps"] = steps,
        };
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}

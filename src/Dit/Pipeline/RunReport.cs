using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using BlockDance.Dit.Caching;

namespace BlockDance.Dit.Pipeline;

/// <summary>
/// What one sampling run did and cost: the plan it executed (per image when an adaptive policy decided differently for
/// the images of the batch), per-step times, the indicator an adaptive policy read at each step and the time its
/// decisions cost, block and MAC counts, cache bytes.
/// </summary>
public sealed class RunReport
{
    private readonly StepKind[][] _kinds;       // per image, per step: what was executed (the plan for a static policy)
    private readonly float[][] _indicator;      // per image, per step; NaN where not measured
    private readonly MacCount _macs;
    private readonly int _boundary, _skipFrom;
    private readonly bool _skipAddsResidual;
    private StepPlan[]? _plans;

    internal RunReport(string device, string policy, StepController controller, MacCount macs, int modelBatch, int images, long cacheBytes)
    {
        Device = device;
        Policy = policy;
        IsDynamic = !controller.IsStatic;
        ModelBatch = modelBatch;
        Images = images;
        CacheBytes = cacheBytes;
        _macs = macs;
        _boundary = controller.Boundary;
        _skipFrom = controller.SkipFrom;
        _skipAddsResidual = controller.SkipAddsResidual;
        Depth = controller.Depth;
        StepMilliseconds = new double[controller.Steps];
        _kinds = new StepKind[images][];
        _indicator = new float[images][];
        for (int i = 0; i < images; i++)
        {
            _kinds[i] = new StepKind[controller.Steps];
            _indicator[i] = Enumerable.Repeat(float.NaN, controller.Steps).ToArray();
        }
        if (controller is PlanController p)
        {
            foreach (var row in _kinds)
                p.Plan.Kinds.ToArray().CopyTo(row, 0);
            _plans = Enumerable.Repeat(p.Plan, images).ToArray();
        }
        MacsPerImageFull = macs.Forward;
    }

    /// <summary>The device's name (cpu, cuda, cuda-emu).</summary>
    public string Device { get; }

    /// <summary>The cache policy, in its canonical syntax.</summary>
    public string Policy { get; }

    /// <summary>True when the policy decided at run time (the plans are those executed).</summary>
    public bool IsDynamic { get; }

    /// <summary>Blocks of the model.</summary>
    public int Depth { get; }

    /// <summary>The plan of image 0 (of every image for a static policy): for an adaptive policy, what it executed so far.</summary>
    public StepPlan Plan => ImagePlans[0];

    /// <summary>The plan each image executed (with guidance, both halves of an image follow one plan).</summary>
    public IReadOnlyList<StepPlan> ImagePlans => _plans ??= _kinds.Select(k => new StepPlan(k, _boundary, Depth, _skipFrom, _skipAddsResidual)).ToArray();

    /// <summary>True when the images of the batch executed different plans.</summary>
    public bool PlansDiffer => _kinds.Skip(1).Any(k => !k.AsSpan().SequenceEqual(_kinds[0]));

    /// <summary>The indicator an adaptive policy read for <paramref name="image"/> at each step (NaN where none was measured).</summary>
    public IReadOnlyList<float> Indicator(int image) => _indicator[image];

    /// <summary>Milliseconds spent computing indicators and deciding (on a CUDA device: host time, launches and downloads).</summary>
    public double DecisionMilliseconds { get; internal set; }

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

    /// <summary>Records what step <paramref name="step"/> executed for each image and the indicator each read.</summary>
    internal void Record(int step, ReadOnlySpan<StepKind> kinds, ReadOnlySpan<float> indicator)
    {
        for (int i = 0; i < Images; i++)
        {
            _kinds[i][step] = kinds[i];
            _indicator[i][step] = indicator[i];
        }
        _plans = null;
    }

    /// <summary>MACs of one full forward of one batch item.</summary>
    public long MacsPerImageFull { get; }

    /// <summary>MACs of this run per batch item, all steps (the mean over the images when their plans differ).</summary>
    public long MacsPerImageRun => Macs / ModelBatch;

    /// <summary>MACs of one step of <paramref name="kind"/> for one batch item.</summary>
    public long StepMacs(StepKind kind) => kind switch
    {
        StepKind.Reuse => _macs.ReuseForward(_boundary),
        StepKind.Skip => _macs.SkipForward(_skipFrom, _skipAddsResidual),
        _ => _macs.Forward,
    };

    /// <summary>MACs of image <paramref name="image"/>'s plan, per batch item.</summary>
    public long ImageMacs(int image) => _kinds[image].Sum(StepMacs);

    /// <summary>MACs of the whole run (every image, both halves with guidance).</summary>
    public long Macs => Enumerable.Range(0, Images).Sum(ImageMacs) * (ModelBatch / Images);

    /// <summary>MACs the run would cost without a cache (every step a full forward of every batch item).</summary>
    public long MacsWithoutCache => MacsPerImageFull * StepMilliseconds.Length * ModelBatch;

    /// <summary>Fraction of <see cref="MacsWithoutCache"/> the cache saved.</summary>
    public double MacsSavedFraction => 1.0 - (double)Macs / MacsWithoutCache;

    /// <summary>The speed-up the saved MACs would give if time were proportional to MACs.</summary>
    public double IdealSpeedup => (double)MacsWithoutCache / Macs;

    private string StepLabel(int k)
    {
        var kind = _kinds[0][k];
        for (int i = 1; i < Images; i++)
            if (_kinds[i][k] != kind)
                return "Mixed";
        return kind.ToString();
    }

    /// <summary>The report as text (generate prints it to standard error).</summary>
    public string ToText()
    {
        var sb = new StringBuilder();
        var ci = CultureInfo.InvariantCulture;
        sb.AppendLine(ci, $"device {Device}, policy {Policy}, {Images} image(s), model batch {ModelBatch}");
        sb.AppendLine(ci, $"plan     {Plan.Letters}{(IsDynamic ? " (executed; decided at run time)" : "")}");
        if (PlansDiffer)
            for (int i = 0; i < Images; i++)
                sb.AppendLine(ci, $"image {i,-3}{ImagePlans[i].Letters}");
        string where = Plan.Count(StepKind.Reuse) > 0 ? $" (boundary {Plan.Boundary} of {Plan.Depth})" : "";
        string all = PlansDiffer ? $"; all images: {ImagePlans.Sum(p => p.BlocksComputed)} computed, {ImagePlans.Sum(p => p.BlocksSkipped)} skipped" : "";
        sb.AppendLine(ci, $"blocks   {Plan.BlocksComputed} computed, {Plan.BlocksSkipped} skipped per image{where}{all}");
        sb.AppendLine(ci, $"MACs     {Macs / 1e9:F2} G of {MacsWithoutCache / 1e9:F2} G without cache ({MacsSavedFraction:P1} saved, ideal speed-up {IdealSpeedup:F3}x)");
        sb.AppendLine(ci, $"cache    {CacheBytes / 1048576.0:F2} MiB");
        if (IsDynamic)
        {
            var values = _indicator[0].Select(v => float.IsNaN(v) ? "-" : v.ToString("F3", ci));
            sb.AppendLine(ci, $"indicator (image 0) {string.Join(' ', values)}");
            sb.AppendLine(ci, $"decision {DecisionMilliseconds:F1} ms ({DecisionMilliseconds / Math.Max(1e-9, TotalMilliseconds):P1} of the run) for indicators and decisions");
        }
        foreach (string label in new[] { "Full", "Cache", "Reuse", "Skip", "Mixed" })
        {
            var times = Enumerable.Range(0, StepMilliseconds.Length).Where(k => StepLabel(k) == label).Select(k => StepMilliseconds[k]).ToArray();
            if (times.Length > 0)
                sb.AppendLine(ci, $"{label,-8} {times.Length,3} steps, mean {times.Average():F2} ms, total {times.Sum():F1} ms");
        }
        sb.Append(ci, $"total    {TotalMilliseconds:F1} ms ({TotalMilliseconds / StepMilliseconds.Length:F2} ms per step)");
        return sb.ToString();
    }

    private static JsonNode? Number(float v) => float.IsNaN(v) ? null : float.IsInfinity(v) ? JsonValue.Create(v > 0 ? "inf" : "-inf") : JsonValue.Create(Math.Round((double)v, 6));

    /// <summary>The report as JSON (<c>blockdance.report/1</c>; adaptive runs add image_plans, indicator, decision_ms).</summary>
    public string ToJson()
    {
        var steps = new JsonArray();
        for (int k = 0; k < StepMilliseconds.Length; k++)
            steps.Add(new JsonObject { ["step"] = k, ["kind"] = StepLabel(k).ToLowerInvariant(), ["ms"] = Math.Round(StepMilliseconds[k], 4) });
        var o = new JsonObject
        {
            ["format"] = "blockdance.report/1",
            ["device"] = Device,
            ["policy"] = Policy,
            ["dynamic"] = IsDynamic,
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
        if (IsDynamic)
        {
            o["decision_ms"] = Math.Round(DecisionMilliseconds, 3);
            o["image_plans"] = new JsonArray(ImagePlans.Select(p => (JsonNode?)JsonValue.Create(p.Letters)).ToArray());
            o["image_blocks_skipped"] = new JsonArray(ImagePlans.Select(p => (JsonNode?)JsonValue.Create(p.BlocksSkipped)).ToArray());
            o["image_macs"] = new JsonArray(Enumerable.Range(0, Images).Select(i => (JsonNode?)JsonValue.Create(ImageMacs(i) * (ModelBatch / Images))).ToArray());
            o["indicator"] = new JsonArray(_indicator.Select(row => (JsonNode?)new JsonArray(row.Select(Number).ToArray())).ToArray());
        }
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}

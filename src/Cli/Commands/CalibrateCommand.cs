using System.Globalization;
using BlockDance.Analysis.Metrics;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;

namespace BlockDance.Cli.Commands;

/// <summary>
/// <c>blockdance calibrate</c>: searches an adaptive policy's threshold for a target speed-up or SSIM on a few
/// calibration images (bisection, <see cref="ThresholdSearch"/>), so that a new model needs no hand tuning. The uncached
/// images are computed once; each threshold tried runs the cached images once.
/// </summary>
public sealed class CalibrateCommand : ICommand
{
    /// <inheritdoc/>
    public CommandSpec Spec { get; } = GenerationOptions.Add(ModelOptions.Add(new CommandSpec("calibrate",
            "Search the threshold of an adaptive cache policy (bwcache, teacache, fbcache) for --target-speedup or --target-ssim\n" +
            "on a few calibration images, and print the value to use. The speed-up is the ideal one from the MACs saved (the\n" +
            "wall-clock one is printed next to it, but a loaded machine makes it too noisy to search on); SSIM is the mean over\n" +
            "the images against the uncached images of the same seed. Without --weights, the bundled model is used."), weightsRequired: false),
            defaultCache: "bwcache")
        .Option("--target-speedup", "X", "smallest threshold whose speed-up reaches X (> 1)")
        .Option("--target-ssim", "Y", "largest threshold whose SSIM stays at or above Y (in (0, 1))")
        .Option("--start", "T", "first threshold tried when bracketing (default: the policy's threshold)")
        .Option("--iterations", "N", "bisection steps after bracketing", "8")
        .Flag("--quiet", "no progress output");

    /// <inheritdoc/>
    public int Run(ParsedArgs args, Console2 console)
    {
        bool bySpeed = args.Has("--target-speedup"), bySsim = args.Has("--target-ssim");
        if (bySpeed == bySsim)
            throw new UsageException("give exactly one of --target-speedup X and --target-ssim Y");
        double target = bySpeed ? args.Double("--target-speedup", 1, 1000) : args.Double("--target-ssim", 0, 1);
        int iterations = args.Int("--iterations", 0, 50);
        var options = ModelOptions.Read(args);
        string weights = ModelOptions.Weights(args);
        using var session = ModelOptions.Open(weights, options);
        var c = session.Config;
        bool pixels = session.IsPixelSpace;
        var request = GenerationOptions.Read(args, Enumerable.Range(0, Math.Min(8, c.NumClasses)).ToArray());
        if (request.Cache is not AdaptivePolicy policy)
            throw new UsageException($"--cache {request.Cache.Spec}: calibrate searches the threshold of an adaptive policy (bwcache, teacache, fbcache)");
        double start = args.Has("--start") ? args.Double("--start", 1e-9, 1e9) : policy.Threshold > 0 ? policy.Threshold : 0.1;
        int n = request.Labels.Count, size = request.LatentSize ?? c.InputSize;
        int frames = session.IsVideo ? c.Frames : 1;   // SSIM frame by frame: a clip is F frames of C×H×W
        bool quiet = args.Flag("--quiet");

        var (reference, referenceMs) = Generate(session, request with { Cache = CachePolicy.None });
        double range = pixels ? 2.0 : reference.Max() - reference.Min();
        var clampedReference = Clamp(reference, pixels);
        bool ssimFits = size >= 2 * ImageMetrics.WindowRadius(1.5) + 1;
        if (!ssimFits && !bySpeed)
            throw new UsageException($"--target-ssim: {size}×{size} images are smaller than SSIM's 11×11 window");
        CalibrationPoint Evaluate(double threshold)
        {
            if (threshold == 0)   // the disabled policy is bit-identical to the uncached run
                return new CalibrationPoint(0, 1, 1, double.PositiveInfinity, 1);
            var (images, report) = Run(session, request with { Cache = policy.WithThreshold(threshold) });
            var clamped = Clamp(images, pixels);
            double ssim = ssimFits ? ImageMetrics.SsimBatch(clamped, clampedReference, n * frames, c.InChannels, size, size, range) : double.NaN;
            double psnr = ImageMetrics.PsnrBatch(clamped, clampedReference, n, range);
            var point = new CalibrationPoint(threshold, report.IdealSpeedup, ssim, psnr, referenceMs / report.TotalMilliseconds);
            if (!quiet)
                console.Err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"threshold {threshold:G5}: speed-up {point.Speedup:F3} (measured {point.MeasuredSpeedup:F3}), SSIM {ssim:F4}"));
            return point;
        }
        var (answer, points) = ThresholdSearch.Search(Evaluate, bySpeed ? CalibrationGoal.Speedup : CalibrationGoal.Ssim, target, start, iterations);

        var o = console.Out;
        var ci = CultureInfo.InvariantCulture;
        o.WriteLine($"policy     {policy.Spec}");
        o.WriteLine(string.Create(ci, $"images     {n} (labels {string.Join(',', request.Labels)}, seed {request.Seed}), {request.Steps} steps, guidance {request.GuidanceScale}"));
        o.WriteLine(string.Create(ci, $"target     {(bySpeed ? "speed-up ≥ " : "SSIM ≥ ")}{target}"));
        o.WriteLine(ThresholdSearch.Table(points));
        if (answer is not CalibrationPoint a)
        {
            var best = points.MaxBy(p => p.Speedup);
            o.WriteLine(string.Create(ci, $"not reachable: the largest threshold tried ({points.Max(p => p.Threshold):G5}) gives a speed-up of {best.Speedup:F3}"));
            return 1;
        }
        o.WriteLine(string.Create(ci, $"threshold  {a.Threshold:G5} (speed-up {a.Speedup:F3}, SSIM {a.Ssim:F4})"));
        o.WriteLine($"use        --cache {policy.WithThreshold(a.Threshold).Spec}");
        return 0;
    }

    private static (float[] Images, double Milliseconds) Generate(DitPipeline session, GenerationRequest request)
    {
        var (images, report) = Run(session, request);
        return (images, report.TotalMilliseconds);
    }

    private static (float[] Images, RunReport Report) Run(DitPipeline session, GenerationRequest request)
    {
        using var run = new SamplingRun(session.Diffusion, request);
        return (run.Run(), run.Report);
    }

    private static float[] Clamp(float[] values, bool pixels) => pixels ? values.Select(v => Math.Clamp(v, -1f, 1f)).ToArray() : values;
}

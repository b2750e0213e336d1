using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using BlockDance.Analysis.Metrics;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Runtime.IO;

namespace BlockDance.Cli.Commands;

/// <summary>
/// <c>blockdance compare</c>: the same seeds with and without a cache policy; prints the measured speed-up, the MACs
/// saved and the consistency of the results (SSIM, PSNR, relative L2).
/// </summary>
public sealed class CompareCommand : ICommand
{
    /// <inheritdoc/>
    public CommandSpec Spec { get; } = GenerationOptions.Add(ModelOptions.AddBundledChoice(ModelOptions.Add(new CommandSpec("compare",
            "Run the same seeds without a cache and with --cache, and report speed-up, MACs saved, SSIM, PSNR and relative L2.\n" +
            "Metrics are computed on the final latents (for a pixel-space model, the images); the data range of SSIM and PSNR is\n" +
            "[-1, 1] for images and the uncached latents' max − min otherwise; a video model's clips are compared frame by frame\n" +
            "(SSIM) and clip by clip (PSNR). Without --weights, the bundled model of --model is used."))), defaultCache: "blockdance:n=2")
        .Option("--repeat", "N", "alternate the two runs N times and keep each one's fastest time", "1")
        .Option("--report", "FILE.json", "also write the comparison as JSON")
        .Flag("--quiet", "no progress output");

    /// <inheritdoc/>
    public int Run(ParsedArgs args, Console2 console)
    {
        var request = GenerationOptions.Read(args);
        if (request.Cache is { Spec: "none" })
            throw new UsageException("compare needs a policy to compare with no cache (--cache blockdance:n=2, ...)");
        int repeat = args.Int("--repeat", 1, 1000);
        var options = ModelOptions.Read(args);
        string weights = ModelOptions.WeightsOrBundled(args);
        string? reportPath = args.String("--report") is string rp ? Outputs.Prepare(rp, "--report", ".json", "the comparison") : null;
        using var pipeline = ModelOptions.Open(weights, options);
        var baselineRequest = request with { Cache = CachePolicy.None };
        Warmup(pipeline, request, console.Cancellation);
        RunReport? baselineReport = null, cachedReport = null;
        float[] baseline = [], cached = [];
        double baselineMs = double.MaxValue, cachedMs = double.MaxValue;
        for (int r = 0; r < repeat; r++)
        {
            (baseline, var br) = Generate(pipeline, baselineRequest, console, args.Flag("--quiet"), "no cache");
            (cached, var cr) = Generate(pipeline, request, console, args.Flag("--quiet"), request.Cache.Spec);
            if (br.TotalMilliseconds < baselineMs) { baselineMs = br.TotalMilliseconds; baselineReport = br; }
            if (cr.TotalMilliseconds < cachedMs) { cachedMs = cr.TotalMilliseconds; cachedReport = cr; }
        }
        var c = pipeline.Config;
        int n = request.Labels.Count, size = request.LatentSize ?? c.InputSize;
        int frames = pipeline.IsVideo ? c.Frames : 1;   // SSIM frame by frame: a clip is F frames of C×H×W
        bool pixels = pipeline.IsPixelSpace;
        double range = pixels ? 2.0 : baseline.Max() - baseline.Min();
        double? ssim = size >= 2 * ImageMetrics.WindowRadius(1.5) + 1
            ? ImageMetrics.SsimBatch(Clamp(cached, pixels), Clamp(baseline, pixels), n * frames, c.InChannels, size, size, range) : null;
        double psnr = ImageMetrics.PsnrBatch(Clamp(cached, pixels), Clamp(baseline, pixels), n, range);
        double relL2 = ImageMetrics.RelativeL2(cached, baseline);
        double speedup = baselineMs / cachedMs;

        var ci = CultureInfo.InvariantCulture;
        var o = console.Out;
        o.WriteLine($"policy        {request.Cache.Spec}");
        o.WriteLine($"plan          {cachedReport!.Plan.Letters}");
        o.WriteLine(string.Create(ci, $"time          {baselineMs:F1} ms without cache, {cachedMs:F1} ms with ({(repeat > 1 ? $"fastest of {repeat}" : "one run each")})"));
        o.WriteLine(string.Create(ci, $"speed-up      {speedup:F3}x measured, {cachedReport.IdealSpeedup:F3}x ideal from MACs ({speedup / cachedReport.IdealSpeedup:P1} of ideal)"));
        o.WriteLine(string.Create(ci, $"MACs saved    {cachedReport.MacsSavedFraction:P2} ({cachedReport.Plan.BlocksSkipped} block evaluations skipped)"));
        o.WriteLine(string.Create(ci, $"SSIM          {(ssim is double s ? s.ToString("F5", ci) : $"n/a ({size}×{size} is smaller than the 11×11 window)")}"));
        o.WriteLine(string.Create(ci, $"PSNR          {psnr:F2} dB (data range {range:G4})"));
        o.WriteLine(string.Create(ci, $"relative L2   {relL2:E3}"));
        if (reportPath is not null)
        {
            var json = new JsonObject
            {
                ["format"] = "blockdance.compare/1",
                ["policy"] = request.Cache.Spec,
                ["plan"] = cachedReport.Plan.Letters,
                ["images"] = n,
                ["steps"] = request.Steps,
                ["baseline_ms"] = Math.Round(baselineMs, 3),
                ["cached_ms"] = Math.Round(cachedMs, 3),
                ["speedup"] = Math.Round(speedup, 5),
                ["ideal_speedup"] = Math.Round(cachedReport.IdealSpeedup, 5),
                ["macs_saved_fraction"] = Math.Round(cachedReport.MacsSavedFraction, 6),
                ["ssim"] = ssim,
                ["psnr_db"] = double.IsFinite(psnr) ? Math.Round(psnr, 4) : null,
                ["relative_l2"] = relL2,
                ["data_range"] = range,
                ["baseline_report"] = JsonNode.Parse(baselineReport!.ToJson()),
                ["cached_report"] = JsonNode.Parse(cachedReport.ToJson()),
            };
            console.Cancellation.ThrowIfCancellationRequested();
            AtomicFile.WriteText(reportPath, w => w.Write(json.ToJsonString(new JsonSerializerOptions { WriteIndented = true })));
        }
        return 0;
    }

    /// <summary>Runs a Full, a Cache and a Reuse step once, untimed, so neither measured run pays for JIT compilation.</summary>
    private static void Warmup(DitPipeline pipeline, GenerationRequest request, CancellationToken cancellation)
    {
        if (request.Cache is AdaPolicy)
        {
            // Ada needs its network's step count: one whole run of the first image (its full, cache and reuse paths).
            using var ada = new SamplingRun(pipeline.Diffusion, request with { Labels = [request.Labels[0]] });
            ada.Run();
            return;
        }
        if (request.Cache.IsDynamic)
        {
            // An adaptive policy: its own first steps (its indicator and, on the bundled model, its first skips).
            using var adaptive = new SamplingRun(pipeline.Diffusion, request with { Steps = Math.Min(request.Steps, 6) });
            adaptive.Run();
            return;
        }
        int depth = pipeline.Config.Depth;
        int boundary = request.Cache.Plan(request.Steps, depth) is { UsesCache: true } p ? p.Boundary : Math.Max(1, depth / 2);
        var plan = new StepPlan([StepKind.Full, StepKind.Cache, StepKind.Reuse], boundary, depth);
        pipeline.Generate(request with { Steps = 3, Cache = new FixedPlan(plan) }, cancellationToken: cancellation);
    }

    private static (float[] Result, RunReport Report) Generate(DitPipeline pipeline, GenerationRequest request, Console2 console, bool quiet, string label)
    {
        var result = pipeline.Generate(request, ProgressBar.Unless(quiet, console, label), console.Cancellation);
        return (result.Latents, result.Report);
    }

    /// <summary>Images are compared as they would be saved, clamped to [−1, 1]; latents as they are.</summary>
    private static float[] Clamp(float[] values, bool pixels) => pixels ? values.Select(v => Math.Clamp(v, -1f, 1f)).ToArray() : values;
}

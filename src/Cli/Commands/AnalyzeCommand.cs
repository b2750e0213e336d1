using BlockDance.Analysis.Metrics;
using BlockDance.Analysis.Plotting;
using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Runtime;

namespace BlockDance.Cli.Commands;

/// <summary>
/// <c>blockdance analyze</c>: the BlockDance paper's similarity analysis of one sampling run. For every block and step,
/// the cosine similarity and relative L1 change of the block's output against the previous step (Fig. 2), and the
/// step × step similarity matrix of the chosen shallow blocks' features (Fig. 5); CSV files and heatmaps (PNG and SVG)
/// that mark the cache window: the run's policy's, or BlockDance's default one when the run caches nothing.
/// </summary>
public sealed class AnalyzeCommand : ICommand
{
    /// <inheritdoc/>
    public CommandSpec Spec { get; } = GenerationOptions.Add(ModelOptions.AddBundledChoice(ModelOptions.Add(new CommandSpec("analyze",
            "Similarity of every block's output between adjacent steps, and the step × step similarity of shallow blocks\n" +
            "(the BlockDance paper's Fig. 2 and Fig. 5), as CSV files and heatmaps (PNG, SVG) marking the cache window\n" +
            "(the policy's, or BlockDance's default one when --cache is none). Without --weights, the bundled model of\n" +
            "--model is used; for a video model every block's output is the clip's whole (frames × tokens) stream."))))
        .Option("--blocks", "LIST", "blocks whose step × step matrix is kept (default: i−1, the block a cache stores: the policy's boundary, else BlockDance's)")
        .Option("--out", "DIR", "output folder", "out/analysis")
        .Option("--scale", "SCALE", "heatmap colour scale: " + ColorScale.Syntax, "clip:98")
        .Option("--plots", "FORMAT", "heatmap files: png, svg or both", "both")
        .Flag("--quiet", "no progress output");

    /// <inheritdoc/>
    public int Run(ParsedArgs args, Console2 console)
    {
        var request = GenerationOptions.Read(args);
        var options = ModelOptions.Read(args);
        string weights = ModelOptions.WeightsOrBundled(args);
        string outDir = Outputs.PrepareFolder(args.RequiredString("--out"), "--out");
        var report = ReadPlotOptions(args);
        using var pipeline = ModelOptions.Open(weights, options);
        int depth = pipeline.Config.Depth;
        // Default: the block whose output a cache would store, i − 1: the policy's boundary, or BlockDance's default one.
        var plan = request.Cache.IsDynamic ? StepPlan.AllFull(request.Steps, depth) : request.Cache.Plan(request.Steps, depth);
        var blockDance = new BlockDancePolicy(2, null, 0.4, 0.95);
        int boundary = plan.UsesCache ? plan.Boundary : blockDance.BoundaryFor(depth);
        // The figures mark the policy's cache window, or BlockDance's when the run caches nothing.
        var marked = plan.UsesCache ? request.Cache : blockDance;
        report = report with
        {
            Window = CacheWindow.FromPlan(marked.Plan(request.Steps, depth), plan.UsesCache ? marked.Spec : marked.Spec + " (not run)"),
        };
        int[] blocks = args.Has("--blocks") ? args.IntList("--blocks") : [boundary - 1];
        foreach (int b in blocks)
            if (b < 0 || b >= depth)
                throw new UsageException($"--blocks: block {b} is outside [0, {depth - 1}]");
        using var run = new SamplingRun(pipeline.Diffusion, request);
        var recorder = new SimilarityRecorder(depth, blocks, items: run.ModelBatch);
        var observer = new Observer(recorder);
        run.BlockObserver = observer;
        var progress = ProgressBar.Unless(args.Flag("--quiet"), console, "analyze");
        while (!run.Finished)
        {
            console.Cancellation.ThrowIfCancellationRequested();
            int k = observer.Step = run.NextStep;
            run.Step();
            progress?.Report(new GenerationProgress(k, run.Steps, run.Plan[k], run.Report.StepMilliseconds[k]));
        }
        console.Cancellation.ThrowIfCancellationRequested();
        var files = recorder.WriteReport(outDir, report);
        console.Out.WriteLine($"analyzed {request.Steps} steps × {depth} blocks (policy {request.Cache.Spec}); step matrix of block(s) {string.Join(", ", blocks)}");
        foreach (string f in files)
            console.Out.WriteLine($"wrote {f}");
        return 0;
    }

    private static SimilarityReportOptions ReadPlotOptions(ParsedArgs args)
    {
        ColorScale scale;
        try
        {
            scale = ColorScale.Parse(args.RequiredString("--scale"));
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"--scale: {e.Message}");
        }
        var formats = args.RequiredString("--plots") switch
        {
            "png" => PlotFormats.Png,
            "svg" => PlotFormats.Svg,
            "both" => PlotFormats.Both,
            var other => throw new UsageException($"--plots '{other}': use png, svg or both"),
        };
        return new SimilarityReportOptions { Scale = scale, Formats = formats };
    }

    private sealed class Observer(SimilarityRecorder recorder) : IBlockObserver
    {
        public int Step { get; set; }

        public void OnBlockOutput(int block, Tensor x) => recorder.Record(Step, block, x.ToFloatArray());
    }
}

using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Metrics;
using BlockDance.Dit.Pipeline;
using BlockDance.Runtime;

namespace BlockDance.Cli.Commands;

/// <summary>
/// <c>blockdance analyze</c>: the BlockDance paper's similarity analysis of one sampling run. For every block and step,
/// the cosine similarity and relative L1 change of the block's output against the previous step (Fig. 2), and the
/// step × step similarity matrix of the chosen shallow blocks' features (Fig. 5); CSV files and heatmap PNGs.
/// </summary>
public sealed class AnalyzeCommand : ICommand
{
    public CommandSpec Spec { get; } = GenerationOptions.Add(ModelSession.AddOptions(new CommandSpec("analyze",
            "Similarity of every block's output between adjacent steps, and the step × step similarity of shallow blocks\n" +
            "(the BlockDance paper's Fig. 2 and Fig. 5), as CSV files and heatmap PNGs.")))
        .Option("--blocks", "LIST", "blocks whose step × step matrix is kept (default: i−1, the block a cache stores: the policy's boundary, else BlockDance's)")
        .Option("--out", "DIR", "output folder", "out/analysis")
        .Flag("--quiet", "no progress output");

    public int Run(ParsedArgs args, Console2 console)
    {
        var request = GenerationOptions.Read(args);
        string outDir = args.RequiredString("--out");
        if (File.Exists(outDir))
            throw new UsageException($"--out '{outDir}' is a file; give a folder");
        Directory.CreateDirectory(outDir);
        using var session = ModelSession.Open(args);
        int depth = session.Config.Depth;
        // Default: the block whose output a cache would store, i − 1: the policy's boundary, or BlockDance's default one.
        var plan = request.Cache.IsDynamic ? StepPlan.AllFull(request.Steps, depth) : request.Cache.Plan(request.Steps, depth);
        int boundary = plan.UsesCache ? plan.Boundary : new Dit.Caching.BlockDancePolicy(2, null, 0.4, 0.95).BoundaryFor(depth);
        int[] blocks = args.Has("--blocks") ? args.IntList("--blocks") : [boundary - 1];
        foreach (int b in blocks)
            if (b < 0 || b >= depth)
                throw new UsageException($"--blocks: block {b} is outside [0, {depth - 1}]");
        using var run = new SamplingRun(session.Model, request);
        var recorder = new SimilarityRecorder(depth, blocks, items: run.ModelBatch);
        var observer = new Observer(recorder);
        run.BlockObserver = observer;
        if (!args.Flag("--quiet"))
            run.StepObserver = new ProgressBar(console.Err, console.Interactive, "analyze");
        while (!run.Finished)
        {
            observer.Step = run.NextStep;
            run.Step();
        }
        var files = recorder.WriteReport(outDir);
        console.Out.WriteLine($"analyzed {request.Steps} steps × {depth} blocks (policy {request.Cache.Spec}); step matrix of block(s) {string.Join(", ", blocks)}");
        foreach (string f in files)
            console.Out.WriteLine($"wrote {f}");
        return 0;
    }

    private sealed class Observer(SimilarityRecorder recorder) : IBlockObserver
    {
        public int Step { get; set; }

        public void OnBlockOutput(int block, Tensor x) => recorder.Record(Step, block, x.ToFloatArray());
    }
}

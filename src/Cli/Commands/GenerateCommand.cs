using System.Globalization;
using BlockDance.Dit.Pipeline;
using BlockDance.Runtime.IO;

namespace BlockDance.Cli.Commands;

/// <summary><c>blockdance generate</c>: class-conditional sampling, written as a latent safetensors file (and a PNG grid,
/// or for a video model an animated GIF and a frame strip).</summary>
public sealed class GenerateCommand : ICommand
{
    /// <inheritdoc/>
    public CommandSpec Spec { get; } = GenerationOptions.Add(ModelOptions.AddBundledChoice(ModelOptions.Add(new CommandSpec("generate",
            "Generate class-conditional samples with a DiT (or clips with a Latte video model) and write the final latents\n" +
            "(safetensors); for a pixel-space model (the bundled one) also a PNG grid with one row per class, for a pixel-space\n" +
            "video model an animated GIF and a frame strip. Without --weights, the bundled model of --model is used.\n" +
            "Outputs are written only when the run is complete (Ctrl+C between steps writes nothing, exit code 130)."))))
        .Option("--per-class", "N", "images per class when --labels is not given and the model is pixel-space", "8")
        .Option("--out", "FILE.safetensors", "latent output file", "out/latents.safetensors")
        .Option("--png", "FILE.png", "image grid of a pixel-space model", "out/samples.png")
        .Option("--report", "FILE.json", "also write the run report as JSON")
        .Option("--gif", "FILE.gif", "animated GIF of a pixel-space video model, one tile per clip", "out/samples.gif")
        .Option("--frames", "FILE.png", "frame strip of a pixel-space video model, one row per clip", "out/frames.png")
        .Flag("--quiet", "no progress output");

    /// <inheritdoc/>
    public int Run(ParsedArgs args, Console2 console)
    {
        // Every option is checked, and every output proven writable, before the model is loaded.
        var options = ModelOptions.Read(args);
        var partial = GenerationOptions.Read(args, []);
        int perClass = args.Int("--per-class", 1, 1000);
        string weights = ModelOptions.WeightsOrBundled(args);
        string output = Outputs.Prepare(args.RequiredString("--out"), "--out", ".safetensors", "the latents file");
        string? reportPath = args.String("--report") is string r ? Outputs.Prepare(r, "--report", ".json", "the report") : null;
        string png = Outputs.CheckName(args.RequiredString("--png"), "--png", ".png", "the image grid");
        string gif = Outputs.CheckName(args.RequiredString("--gif"), "--gif", ".gif", "the animation");
        string strip = Outputs.CheckName(args.RequiredString("--frames"), "--frames", ".png", "the frame strip");
        using var pipeline = ModelOptions.Open(weights, options);
        bool clips = pipeline.IsPixelSpace && pipeline.IsVideo;
        if (clips)
        {
            Outputs.Prepare(gif, "--gif", ".gif", "the animation");       // still before any step
            Outputs.Prepare(strip, "--frames", ".png", "the frame strip");
        }
        else if (pipeline.IsPixelSpace)
        {
            Outputs.Prepare(png, "--png", ".png", "the image grid");
        }
        var c = pipeline.Config;
        var request = args.Has("--labels") ? partial : partial with
        {
            Labels = pipeline.IsPixelSpace ? Enumerable.Range(0, c.NumClasses).SelectMany(k => Enumerable.Repeat(k, perClass)).ToArray() : [0, 1, 2, 3],
        };

        var result = pipeline.Generate(request, ProgressBar.Unless(args.Flag("--quiet"), console, "generate"), console.Cancellation);
        console.Cancellation.ThrowIfCancellationRequested();   // a Ctrl+C after the last step still writes nothing
        result.SaveLatents(output);
        if (reportPath is not null)
            AtomicFile.WriteText(reportPath, w => w.Write(result.Report.ToJson()));
        if (!args.Flag("--quiet"))
            console.Err.WriteLine(result.Report.ToText());
        console.Out.WriteLine($"wrote {output} ({string.Join(" × ", result.Shape)})");
        if (clips)
        {
            int n = result.Labels.Count, size = result.Shape[^1];
            VideoOutput.WriteGif(gif, result.Latents, n, c.Frames, c.InChannels, size, VideoOutput.Rows(result.Labels));
            VideoOutput.WriteFrameStrip(strip, result.Latents, n, c.InChannels, size);
            console.Out.WriteLine($"wrote {gif} ({n} clip(s) of {c.Frames} frames{ClassNames(pipeline, result.Labels)}) and {strip} (one row per clip)");
        }
        else if (pipeline.IsPixelSpace)
        {
            result.SaveImageGrid(png);
            console.Out.WriteLine($"wrote {png} ({result.Labels.Distinct().Count()} row(s), one per class{ClassNames(pipeline, result.Labels)})");
        }
        return 0;
    }

    private static string ClassNames(DitPipeline pipeline, IReadOnlyList<int> labels)
    {
        var all = pipeline.ClassNames;
        if (all.Count == 0)
            return "";
        return ": " + string.Join(", ", labels.Distinct().Select(l => l < all.Count ? all[l] : l == all.Count ? "unconditional" : l.ToString(CultureInfo.InvariantCulture)));
    }
}

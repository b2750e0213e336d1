using System.Globalization;
using BlockDance.Dit.Pipeline;
using BlockDance.Dit.Sampling;
using BlockDance.Runtime.IO;
using BlockDance.Runtime.Imaging;
using BlockDance.Runtime.Safetensors;

namespace BlockDance.Cli.Commands;

/// <summary><c>blockdance generate</c>: class-conditional sampling, written as a latent safetensors file.</summary>
public sealed class GenerateCommand : ICommand
{
    public CommandSpec Spec { get; } = GenerationOptions.Add(ModelSession.AddOptions(new CommandSpec("generate",
            "Generate class-conditional samples with a DiT and write the final latents (safetensors); for a pixel-space model\n" +
            "(the bundled one) also a PNG grid with one row per class. Without --weights, the bundled model is used."), weightsRequired: false))
        .Option("--per-class", "N", "images per class when --labels is not given and the model is pixel-space", "8")
        .Option("--out", "FILE", "latent output file", "out/latents.safetensors")
        .Option("--png", "FILE", "image grid of a pixel-space model", "out/samples.png")
        .Option("--report", "FILE", "also write the run report as JSON")
        .Option("--model", "NAME", "bundled model when --weights is not given: shapes (images) or shapes-video (clips)", "shapes")
        .Option("--gif", "FILE", "animated GIF of a pixel-space video model, one tile per clip", "out/samples.gif")
        .Option("--frames", "FILE", "frame strip of a pixel-space video model, one row per clip", "out/frames.png")
        .Flag("--quiet", "no progress output");

    public int Run(ParsedArgs args, Console2 console)
    {
        string output = PrepareOutput(args.RequiredString("--out"), "--out");
        string? reportPath = args.String("--report") is string r ? PrepareOutput(r, "--report") : null;
        string png = PrepareOutput(args.RequiredString("--png"), "--png");
        int perClass = args.Int("--per-class", 1, 1000);
        using var session = ModelSession.Open(args, weights: args.String("--weights") ?? BundledModel.Require(args.RequiredString("--model")));
        var c = session.Config;
        bool pixels = session.Checkpoint.File.Metadata.GetValueOrDefault("pixel_space") == "true";
        var request = GenerationOptions.Read(args, pixels ? Enumerable.Range(0, c.NumClasses).SelectMany(k => Enumerable.Repeat(k, perClass)).ToArray() : null);

        using var run = new SamplingRun(session.Diffusion, request);
        if (!args.Flag("--quiet"))
            run.StepObserver = new ProgressBar(console.Err, console.Interactive, "generate");
        float[] latent = run.Run();

        int size = request.LatentSize ?? c.InputSize;
        var writer = new SafetensorsWriter()
            .Add("latent", (ReadOnlySpan<float>)latent, c.Frames > 0 ? [request.Labels.Count, c.Frames, c.InChannels, size, size] : [request.Labels.Count, c.InChannels, size, size])
            .Add("labels", (ReadOnlySpan<long>)request.Labels.Select(l => (long)l).ToArray(), [request.Labels.Count])
            .SetMetadata("format", "blockdance.latent/1")
            .SetMetadata("weights", Path.GetFileName(session.Checkpoint.Path))
            .SetMetadata("seed", request.Seed.ToString(CultureInfo.InvariantCulture))
            .SetMetadata("steps", request.Steps.ToString(CultureInfo.InvariantCulture))
            .SetMetadata("sampler", Sampler.Name(request.Sampler))
            .SetMetadata("eta", request.Eta.ToString(CultureInfo.InvariantCulture))
            .SetMetadata("cfg_scale", request.GuidanceScale.ToString(CultureInfo.InvariantCulture))
            .SetMetadata("cache", request.Cache.Spec);
        CreateParent(output);
        writer.Save(output);
        if (reportPath is not null)
        {
            CreateParent(reportPath);
            AtomicFile.WriteText(reportPath, w => w.Write(run.Report.ToJson()));
        }
        if (!args.Flag("--quiet"))
            console.Err.WriteLine(run.Report.ToText());
        console.Out.WriteLine($"wrote {output} ({request.Labels.Count} × {(c.Frames > 0 ? $"{c.Frames} × " : "")}{c.InChannels} × {size} × {size})");
        if (pixels && c.Frames > 0)
        {
            string gif = PrepareOutput(args.RequiredString("--gif"), "--gif"), strip = PrepareOutput(args.RequiredString("--frames"), "--frames");
            VideoOutput.WriteGif(gif, latent, request.Labels.Count, c.Frames, c.InChannels, size, VideoOutput.Rows(request.Labels));
            VideoOutput.WriteFrameStrip(strip, latent, request.Labels.Count, c.InChannels, size);
            console.Out.WriteLine($"wrote {gif} ({request.Labels.Count} clip(s) of {c.Frames} frames{ClassNames(session, request.Labels)}) and {strip} (one row per clip)");
        }
        else if (pixels)
        {
            WriteGrid(png, latent, request.Labels, c.InChannels, size);
            console.Out.WriteLine($"wrote {png} ({request.Labels.Distinct().Count()} row(s), one per class{ClassNames(session, request.Labels)})");
        }
        return 0;
    }

    /// <summary>The images as a grid: one row per distinct label, in order of first appearance.</summary>
    private static void WriteGrid(string path, float[] images, IReadOnlyList<int> labels, int channels, int size)
    {
        var rows = labels.Distinct().ToList();
        int columns = rows.Max(r => labels.Count(l => l == r));
        long item = (long)channels * size * size;
        var ordered = new float[rows.Count * columns * item];
        Array.Fill(ordered, -1f);   // missing cells stay black
        for (int r = 0; r < rows.Count; r++)
        {
            int col = 0;
            for (int i = 0; i < labels.Count; i++)
                if (labels[i] == rows[r])
                    Array.Copy(images, i * item, ordered, (r * columns + col++) * item, item);
        }
        var grid = ImageGrid.Compose(ordered, channels, size, size, rows.Count);
        CreateParent(path);
        Png.Write(path, grid.Pixels, grid.Width, grid.Height, PngColorType.Rgb);
    }

    private static string ClassNames(ModelSession session, IReadOnlyList<int> labels)
    {
        if (session.Checkpoint.File.Metadata.GetValueOrDefault("class_names") is not { } names)
            return "";
        var all = names.Split(',');
        return ": " + string.Join(", ", labels.Distinct().Select(l => l < all.Length ? all[l] : l == all.Length ? "unconditional" : l.ToString(CultureInfo.InvariantCulture)));
    }

    /// <summary>
    /// Checks an output file option before any work is done (a directory given as a file, an uncreatable folder) and
    /// creates its folder, so that a long run never ends in "cannot write". Returns the path.
    /// </summary>
    internal static string PrepareOutput(string path, string option)
    {
        if (Directory.Exists(path))
            throw new UsageException($"{option} '{path}' is a directory; give a file name");
        try
        {
            CreateParent(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"{option} '{path}': cannot create its folder ({e.Message})");
        }
        return path;
    }

    internal static void CreateParent(string path)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null)
            Directory.CreateDirectory(dir);
    }
}

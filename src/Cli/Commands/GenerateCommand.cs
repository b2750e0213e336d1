using System.Globalization;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Dit.Sampling;
using BlockDance.Runtime.Safetensors;

namespace BlockDance.Cli.Commands;

/// <summary><c>blockdance generate</c>: class-conditional sampling, written as a latent safetensors file.</summary>
public sealed class GenerateCommand : ICommand
{
    public CommandSpec Spec { get; } = ModelSession.AddOptions(new CommandSpec("generate",
            "Generate class-conditional samples with a DiT and write the final latents (safetensors)."))
        .Option("--labels", "LIST", "class labels, one image each (e.g. 1,2,5-7; num_classes = unconditional)", "0,1,2,3")
        .Option("--seed", "N", "seed of all the noise (same seed, same bytes)", "0")
        .Option("--steps", "N", "sampling steps", "50")
        .Option("--sampler", "NAME", "ddim, ddim-leading (diffusers spacing) or ancestral", "ddim")
        .Option("--eta", "F", "DDIM eta (0 = deterministic)", "0")
        .Option("--guidance", "F", "classifier-free guidance scale (≤ 1 disables guidance)", "4")
        .Option("--latent-size", "N", "latent height and width (default: the model's input size)")
        .Option("--cache", "POLICY", CachePolicy.Syntax, "none")
        .Option("--out", "FILE", "latent output file", "out/latents.safetensors")
        .Option("--report", "FILE", "also write the run report as JSON")
        .Flag("--quiet", "no progress output");

    public int Run(ParsedArgs args, Console2 console)
    {
        var request = new GenerationRequest
        {
            Labels = args.IntList("--labels"),
            Seed = args.ULong("--seed"),
            Steps = args.Int("--steps", 1, 1000),
            Sampler = args.Choice("--sampler", Sampler.Parse),
            Eta = (float)args.Double("--eta", 0, 100),
            GuidanceScale = (float)args.Double("--guidance", -1000, 1000),
            LatentSize = args.OptionalInt("--latent-size", 1, 4096),
            Cache = args.Choice("--cache", CachePolicy.Parse),
        };
        string output = args.RequiredString("--out");
        string? reportPath = args.String("--report");

        using var session = ModelSession.Open(args);
        using var run = new SamplingRun(session.Model, request);
        if (!args.Flag("--quiet"))
            run.StepObserver = new ProgressBar(console.Err, console.Interactive, "generate");
        float[] latent = run.Run();

        var c = session.Config;
        int size = request.LatentSize ?? c.InputSize;
        var writer = new SafetensorsWriter()
            .Add("latent", (ReadOnlySpan<float>)latent, [request.Labels.Count, c.InChannels, size, size])
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
            File.WriteAllText(reportPath, run.Report.ToJson());
        }
        if (!args.Flag("--quiet"))
            console.Err.WriteLine(run.Report.ToText());
        console.Out.WriteLine($"wrote {output} ({request.Labels.Count} × {c.InChannels} × {size} × {size})");
        return 0;
    }

    internal static void CreateParent(string path)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null)
            Directory.CreateDirectory(dir);
    }
}

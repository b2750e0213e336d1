using System.Globalization;
using BlockDance.Dit.Pipeline;
using BlockDance.Dit.Sampling;
using BlockDance.Runtime.IO;
using BlockDance.Runtime.Safetensors;

namespace BlockDance.Cli.Commands;

/// <summary><c>blockdance generate</c>: class-conditional sampling, written as a latent safetensors file.</summary>
public sealed class GenerateCommand : ICommand
{
    public CommandSpec Spec { get; } = GenerationOptions.Add(ModelSession.AddOptions(new CommandSpec("generate",
            "Generate class-conditional samples with a DiT and write the final latents (safetensors).")))
        .Option("--out", "FILE", "latent output file", "out/latents.safetensors")
        .Option("--report", "FILE", "also write the run report as JSON")
        .Flag("--quiet", "no progress output");

    public int Run(ParsedArgs args, Console2 console)
    {
        var request = GenerationOptions.Read(args);
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
            AtomicFile.WriteText(reportPath, w => w.Write(run.Report.ToJson()));
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

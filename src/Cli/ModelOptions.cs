using BlockDance.Dit;
using BlockDance.Dit.Pipeline;
using BlockDance.Kernels;
using BlockDance.Runtime;

namespace BlockDance.Cli;

/// <summary>The options every model-running command shares, and how they open a <see cref="DitPipeline"/>.</summary>
public static class ModelOptions
{
    /// <summary>Adds --weights, --heads, --numerics, --device, --dtype and --threads.</summary>
    public static CommandSpec Add(CommandSpec spec, bool weightsRequired = false) => spec
        .Option("--weights", "FILE", "DiT checkpoint (.safetensors, original or diffusers layout)" + (weightsRequired ? "" : "; default: the bundled model"))
        .Option("--heads", "N", "attention heads, when the checkpoint's metadata does not say")
        .Option("--numerics", "LAYOUT", "numerics to follow: original or diffusers (default: the checkpoint's layout)")
        .Option("--device", "NAME", "where to run: " + DeviceNames.All, "cpu")
        .Option("--dtype", "TYPE", "activation and weight storage type on the CUDA devices: f32, f16 or bf16 (math is f32)", "f32")
        .Option("--threads", "N", "CPU threads (0 = all cores)", "0");

    /// <summary>Adds --model NAME: the bundled model (<see cref="DitPipeline.BundledModels"/>) a command runs when --weights is not given.</summary>
    public static CommandSpec AddBundledChoice(CommandSpec spec) => spec
        .Option("--model", "NAME", "bundled model when --weights is not given: shapes (images) or shapes-video (clips)", "shapes");

    /// <summary>The checkpoint of --weights, else the bundled model that --model (<see cref="AddBundledChoice"/>) names.</summary>
    public static string WeightsOrBundled(ParsedArgs args) => Weights(args, bundled: args.RequiredString("--model"));

    /// <summary>The checkpoint of --weights, else (unless required) the bundled model <paramref name="bundled"/>; checked to be a file.</summary>
    public static string Weights(ParsedArgs args, bool required = false, string bundled = "shapes")
    {
        if (args.String("--weights") is string weights)
            return Inputs.Require(weights, "--weights");
        if (required)
            throw new UsageException("--weights FILE is required");
        return Bundled(bundled);
    }

    /// <summary>The path of the bundled model <paramref name="name"/> (<see cref="DitPipeline.FindBundled(string)"/>),
    /// checked to exist; an unknown name is a usage error that lists the bundled models.</summary>
    public static string Bundled(string name = "shapes")
    {
        if (!DitPipeline.BundledModels.Contains(name))
            throw new UsageException($"--model '{name}': the bundled models are {string.Join(", ", DitPipeline.BundledModels)}");
        string path = DitPipeline.FindBundled(name) ?? throw new FileNotFoundException(name == "shapes"
            ? $"no --weights given and the bundled model (models/dit-shapes-32.safetensors) was not found; pass --weights FILE or set {DitPipeline.ModelEnvironmentVariable}"
            : $"no --weights given and the bundled model '{name}' was not found in models/ (of the repository or the application's folder); pass --weights FILE");
        return Environment.GetEnvironmentVariable(DitPipeline.ModelEnvironmentVariable) == path
            ? Inputs.Require(path, DitPipeline.ModelEnvironmentVariable) : path;
    }

    /// <summary>The pipeline options the arguments give (checked: every bad value is a usage error); the arguments given
    /// here override them.</summary>
    public static PipelineOptions Read(ParsedArgs args, DitNumerics? numerics = null, int? heads = null)
    {
        if (args.String("--numerics") is string n)
            numerics = n.ToLowerInvariant() switch
            {
                "original" => DitNumerics.Original,
                "diffusers" => DitNumerics.Diffusers,
                _ => throw new UsageException($"--numerics '{n}': expected original or diffusers"),
            };
        return new PipelineOptions
        {
            Device = args.Choice("--device", DeviceNames.Parse),
            DType = args.Choice("--dtype", DTypes.ParseActivationType),
            Threads = args.Int("--threads", 0, 1024),
            Heads = heads ?? args.OptionalInt("--heads", 1, 4096),
            Numerics = numerics,
        };
    }

    /// <summary>Opens the pipeline; <paramref name="profile"/> wraps the ops in the per-op profiler.</summary>
    public static DitPipeline Open(string weights, PipelineOptions options, bool profile = false) =>
        DitPipeline.Open(weights, options, profile ? ProfilingOps.Wrap : null);
}

using BlockDance.Dit;
using BlockDance.Kernels;
using BlockDance.Runtime;

namespace BlockDance.Cli;

/// <summary>The options every model-running command shares, and the opened checkpoint, backend and model.</summary>
public sealed class ModelSession : IDisposable
{
    private ModelSession(DitCheckpoint checkpoint, IOps ops, IDiffusionModel model)
    {
        Checkpoint = checkpoint;
        Ops = ops;
        Diffusion = model;
    }

    public DitCheckpoint Checkpoint { get; }
    public IOps Ops { get; }
    public DitModel Model => Diffusion as DitModel
        ?? throw new UsageException($"{Checkpoint.Path} is a Latte video model ({Config.Frames} frames); this command runs image DiTs only");

    /// <summary>The opened model, image DiT or video Latte (a Latte checkpoint has <c>temp_embed</c>).</summary>
    public IDiffusionModel Diffusion { get; }
    public DitConfig Config => Diffusion.Config;

    public static CommandSpec AddOptions(CommandSpec spec, bool weightsRequired = true) => spec
        .Option("--weights", "FILE", "DiT checkpoint (.safetensors, original or diffusers layout)" + (weightsRequired ? "" : "; default: the bundled model"))
        .Option("--heads", "N", "attention heads, when the checkpoint's metadata does not say")
        .Option("--numerics", "LAYOUT", "numerics to follow: original or diffusers (default: the checkpoint's layout)")
        .Option("--device", "NAME", "where to run: " + Backends.Names, "cpu")
        .Option("--dtype", "TYPE", "activation and weight storage type on the CUDA devices: f32, f16 or bf16 (math is f32)", "f32")
        .Option("--threads", "N", "CPU threads (0 = all cores)", "0");

    public static ModelSession Open(ParsedArgs args, string? weights = null, DitNumerics? numerics = null, int? heads = null, bool profile = false)
    {
        weights ??= args.String("--weights") ?? throw new UsageException("--weights FILE is required");
        heads ??= args.OptionalInt("--heads", 1, 4096);
        if (args.String("--numerics") is string n)
            numerics = n.ToLowerInvariant() switch
            {
                "original" => DitNumerics.Original,
                "diffusers" => DitNumerics.Diffusers,
                _ => throw new UsageException($"--numerics '{n}': expected original or diffusers"),
            };
        string device = args.RequiredString("--device");
        var dtype = args.Choice("--dtype", DTypes.ParseActivationType);
        int threads = args.Int("--threads", 0, 1024);
        var checkpoint = DitCheckpoint.Open(weights, heads, numerics);
        IOps? ops = null;
        try
        {
            ops = Backends.Open(device, threads, dtype);
            if (profile)
                ops = new ProfilingOps(ops);
            return new ModelSession(checkpoint, ops, checkpoint.Config.Frames > 0 ? LatteModel.Load(checkpoint, ops) : DitModel.Load(checkpoint, ops));
        }
        catch
        {
            ops?.Dispose();
            checkpoint.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        Diffusion.Dispose();
        Ops.Dispose();
        Checkpoint.Dispose();
    }
}

using BlockDance.Dit;
using BlockDance.Runtime;

namespace BlockDance.Cli.Commands;

/// <summary><c>blockdance info W</c>: tensors, detected layout, inferred configuration, parameter count.</summary>
public sealed class InfoCommand : ICommand
{
    /// <inheritdoc/>
    public CommandSpec Spec { get; } = new CommandSpec("info",
            "Describe a DiT checkpoint: layout, configuration, parameters, metadata and (with --tensors) every tensor.",
            "FILE", "the checkpoint (.safetensors); default: the bundled model")
        .Option("--heads", "N", "attention heads, when the checkpoint's metadata does not say")
        .Flag("--tensors", "list every tensor with dtype and shape");

    /// <inheritdoc/>
    public int Run(ParsedArgs args, Console2 console)
    {
        string path = args.Positionals.Count > 0 ? Inputs.Require(args.Positionals[0], "info FILE") : ModelOptions.Bundled();
        using var checkpoint = DitCheckpoint.Open(path, args.OptionalInt("--heads", 1, 4096));
        var c = checkpoint.Config;
        var file = checkpoint.File;
        var o = console.Out;
        o.WriteLine($"file        {path} ({file.Length / 1048576.0:F1} MiB, {file.Tensors.Count} tensors)");
        o.WriteLine($"layout      {checkpoint.Layout.ToString().ToLowerInvariant()} (numerics: timestep divisor {c.FrequencyEmbeddingSize / 2 - c.Numerics.FrequencyShift}, " +
                    $"MLP LayerNorm eps {c.Numerics.MlpNormEps:0e+00}, guidance on {c.Numerics.GuidedChannels} channels)");
        o.WriteLine($"model       DiT, depth {c.Depth}, hidden {c.HiddenSize}, heads {c.Heads} (head dim {c.HeadDim}), patch {c.PatchSize}, MLP {c.MlpHidden}");
        o.WriteLine($"channels    {c.InChannels} in, {c.OutChannels} out ({(c.LearnSigma ? "learned sigma" : "epsilon only")})");
        o.WriteLine($"classes     {c.NumClasses} (+ null class {c.NullClass})");
        o.WriteLine($"input       {c.InputSize}×{c.InputSize} latent, {c.Tokens(c.InputSize, c.InputSize)} tokens");
        o.WriteLine($"parameters  {checkpoint.ParameterCount:N0} ({checkpoint.ParameterCount / 1e6:F1} M)");
        var dtypes = file.Tensors.GroupBy(t => t.DType).Select(g => $"{g.Key.SafetensorsName()} × {g.Count()}");
        o.WriteLine($"dtypes      {string.Join(", ", dtypes)}");
        var macs = new MacCount(c, c.Tokens(c.InputSize, c.InputSize));
        o.WriteLine($"MACs        {macs.Forward / 1e9:F3} G per image per forward at the input size");
        foreach (var (key, value) in file.Metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
            o.WriteLine($"metadata    {key} = {value}");
        if (args.Flag("--tensors"))
            foreach (var t in file.Tensors)
                o.WriteLine($"  {t.Name,-60} {t.DType.SafetensorsName(),-5} {t.ShapeString}");
        return 0;
    }
}

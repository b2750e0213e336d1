using System.Globalization;
using System.Text;
using BlockDance.Runtime;
using BlockDance.Runtime.Safetensors;

namespace BlockDance.Dit;

/// <summary>A tensor the configuration says a checkpoint must (or may) contain.</summary>
internal readonly record struct ExpectedTensor(string Key, int[] Shape, bool Required = true);

/// <summary>
/// A DiT checkpoint on disk: the memory-mapped safetensors file, its detected key layout and the configuration
/// inferred from the tensor shapes. The model reads parameters by their <b>original</b> DiT names
/// (<c>blocks.3.attn.qkv.weight</c>); the layout maps them to the file's keys.
/// </summary>
public sealed class DitCheckpoint : IDisposable
{
    private DitCheckpoint(SafetensorsFile file, DitLayout layout, DitConfig config)
    {
        File = file;
        Layout = layout;
        Config = config;
    }

    /// <summary>The memory-mapped safetensors file.</summary>
    public SafetensorsFile File { get; }
    /// <summary>The key layout detected from the tensor names.</summary>
    public DitLayout Layout { get; }
    /// <summary>The configuration inferred from the shapes and the metadata.</summary>
    public DitConfig Config { get; }
    /// <summary>The file's path.</summary>
    public string Path => File.Path;

    /// <summary>Total number of parameters the model uses (each diffusers embedder copy counted once).</summary>
    public long ParameterCount => ExpectedTensors(Layout, Config)
        .Where(e => e.Required && File.Contains(e.Key) && !IsEmbedderCopy(e.Key))
        .Sum(e => e.Shape.Aggregate(1L, (a, b) => a * b));

    /// <summary>
    /// Opens a checkpoint, detects its layout from the key names, infers the configuration and checks every tensor
    /// against it. <paramref name="heads"/> overrides the head count (weights cannot reveal it; otherwise it comes from
    /// the file's <c>num_heads</c> metadata or a preset of the same depth and width). <paramref name="numerics"/>
    /// overrides the layout's own numerics.
    /// </summary>
    public static DitCheckpoint Open(string path, int? heads = null, DitNumerics? numerics = null)
    {
        var file = SafetensorsFile.Open(path);
        try
        {
            var layout = DetectLayout(file);
            var config = InferConfig(file, layout, heads) with { Numerics = numerics ?? DitNumerics.For(layout) };
            if (layout == DitLayout.Original && file.Contains("temp_embed"))
                config = LatteConfig(file, config, numerics);
            if (layout == DitLayout.Diffusers)
                config = config with { PositionBaseSize = config.InputSize / config.PatchSize, PositionInterpolationScale = Math.Max(config.InputSize / 64, 1) };
            CheckTensors(file, layout, config);
            if (layout == DitLayout.Diffusers)
                CheckEmbedderCopies(file, config.Depth);
            return new DitCheckpoint(file, layout, config);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The key layout of a safetensors file (original DiT or diffusers) from its tensor names.</summary>
    /// <exception cref="CheckpointException">The file is not a DiT checkpoint (or is another model, e.g. PixArt-α).</exception>
    public static DitLayout DetectLayout(SafetensorsFile file)
    {
        if (file.Contains("x_embedder.proj.weight") || file.Contains("blocks.0.attn.qkv.weight"))
        {
            if (file.Contains("t_block.1.weight") || file.Contains("blocks.0.cross_attn.q_linear.weight"))
                throw new CheckpointException($"{file.Path}: this is a PixArt-α checkpoint (t_block / cross_attn keys); only DiT is supported");
            return DitLayout.Original;
        }
        if (file.Contains("pos_embed.proj.weight") || file.Contains("transformer_blocks.0.attn1.to_q.weight"))
        {
            if (file.Contains("adaln_single.linear.weight") || file.Contains("caption_projection.linear_1.weight"))
                throw new CheckpointException($"{file.Path}: this is a diffusers PixArt-α checkpoint (adaln_single keys); only DiT is supported");
            return DitLayout.Diffusers;
        }
        var sample = string.Join(", ", file.Tensors.Take(6).Select(t => t.Name));
        throw new CheckpointException(
            $"{file.Path}: not a DiT checkpoint in a known layout. Expected the original keys (x_embedder.proj.weight, " +
            $"blocks.0.attn.qkv.weight, ...) or the diffusers keys (pos_embed.proj.weight, transformer_blocks.0.attn1.to_q.weight, ...); " +
            $"found {file.Tensors.Count} tensors: {sample}{(file.Tensors.Count > 6 ? ", ..." : "")}");
    }

    private static DitConfig InferConfig(SafetensorsFile file, DitLayout layout, int? headsOverride)
    {
        bool original = layout == DitLayout.Original;
        string patchKey = original ? "x_embedder.proj.weight" : "pos_embed.proj.weight";
        string labelKey = original ? "y_embedder.embedding_table.weight" : "transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight";
        string outKey = original ? "final_layer.linear.weight" : "proj_out_2.weight";
        string blockKey = original ? "blocks.{0}.attn.qkv.weight" : "transformer_blocks.{0}.attn1.to_q.weight";
        string freqKey = original ? "t_embedder.mlp.0.weight" : "transformer_blocks.0.norm1.emb.timestep_embedder.linear_1.weight";

        var patch = Shape(file, patchKey, 4);        // [D, C, p, p]
        if (patch[2] != patch[3])
            throw new CheckpointException($"{file.Path}: '{patchKey}' {Fmt(patch)} has a non-square kernel");
        int hidden = patch[0], inChannels = patch[1], p = patch[2];
        if (hidden <= 0 || inChannels <= 0 || p <= 0)
            throw new CheckpointException($"{file.Path}: '{patchKey}' {Fmt(patch)} has an empty dimension");
        int depth = 0;
        while (file.Contains(string.Format(CultureInfo.InvariantCulture, blockKey, depth)))
            depth++;
        if (depth == 0)
            throw new CheckpointException($"{file.Path}: no transformer blocks ('{string.Format(CultureInfo.InvariantCulture, blockKey, 0)}' is missing)");
        int classes = Shape(file, labelKey, 2)[0] - 1;
        int outDim = Shape(file, outKey, 2)[0];
        if (outDim % (p * p) != 0)
            throw new CheckpointException($"{file.Path}: '{outKey}' has {outDim} rows, not a multiple of patch² = {p * p}");
        int outChannels = outDim / (p * p);
        if (outChannels != inChannels && outChannels != 2 * inChannels)
            throw new CheckpointException($"{file.Path}: {outChannels} output channels for {inChannels} input channels (expected {inChannels} or {2 * inChannels} with learned sigma)");
        int freq = Shape(file, freqKey, 2)[1];

        int inputSize = MetaInt(file, "input_size") ?? MetaInt(file, "sample_size") ?? 32;
        if (original && file.TryGet("pos_embed", out var pos) && pos.Shape.Length == 3)
        {
            int side = (int)Math.Round(Math.Sqrt(pos.Shape[1]));
            if (side * side == pos.Shape[1])
                inputSize = side * p;
        }

        int? heads = headsOverride ?? MetaInt(file, "num_heads") ?? MetaInt(file, "heads") ?? DitConfig.PresetHeads(depth, hidden);
        if (heads is null)
            throw new CheckpointException(
                $"{file.Path}: the number of attention heads cannot be read from the weights (depth {depth}, hidden {hidden} " +
                "matches no preset) and the file has no 'num_heads' metadata; pass it with --heads");
        if (heads <= 0 || hidden % heads != 0)
            throw new CheckpointException($"{file.Path}: hidden size {hidden} is not divisible by {heads} heads");
        int? metaClasses = MetaInt(file, "num_classes");
        if (metaClasses is not null && metaClasses != classes)
            throw new CheckpointException($"{file.Path}: metadata says {metaClasses} classes but the label table has {classes + 1} rows (classes + the null class)");

        try
        {
            return new DitConfig
            {
                Depth = depth, HiddenSize = hidden, Heads = heads.Value, PatchSize = p, InChannels = inChannels,
                LearnSigma = outChannels == 2 * inChannels, NumClasses = classes, InputSize = inputSize,
                FrequencyEmbeddingSize = freq,
            }.Validate();
        }
        catch (ArgumentException e)
        {
            throw new CheckpointException($"{file.Path}: {e.Message}");
        }
    }

    /// <summary>
    /// A Latte checkpoint (Vchitect/Latte <c>models/latte.py</c>): the DiT keys plus <c>temp_embed</c> [1, F, D], from
    /// which the frame count comes (a <c>num_frames</c> metadata entry must agree). Its <c>forward_with_cfg</c> guides
    /// <c>model_out[:, :, :4]</c>, the four ε channels of its latents, so unless numerics are given the guided channels
    /// are 4 (at most C').
    /// </summary>
    private static DitConfig LatteConfig(SafetensorsFile file, DitConfig config, DitNumerics? numerics)
    {
        var temp = Shape(file, "temp_embed", 3);
        if (temp[0] != 1 || temp[1] <= 0 || temp[2] != config.HiddenSize)
            throw new CheckpointException($"{file.Path}: 'temp_embed' has shape {Fmt(temp)}, expected [1, frames, {config.HiddenSize}]");
        int? meta = MetaInt(file, "num_frames");
        if (meta is not null && meta != temp[1])
            throw new CheckpointException($"{file.Path}: metadata says {meta} frames but 'temp_embed' has {temp[1]} rows");
        try
        {
            return (config with
            {
                Frames = temp[1],
                Numerics = numerics ?? DitNumerics.Original with { GuidedChannels = Math.Min(4, config.OutChannels) },
            }).Validate();
        }
        catch (ArgumentException e)
        {
            throw new CheckpointException($"{file.Path}: {e.Message}");
        }
    }

    /// <summary>Every tensor a checkpoint of this layout and configuration holds, with its shape.</summary>
    internal static IEnumerable<ExpectedTensor> ExpectedTensors(DitLayout layout, DitConfig c)
    {
        int d = c.HiddenSize, p = c.PatchSize, f = c.FrequencyEmbeddingSize, g = c.InputSize / p;
        int[] lin(int o, int i) => [o, i];
        if (layout == DitLayout.Original)
        {
            yield return new("pos_embed", [1, g * g, d], Required: false);
            if (c.Frames > 0)
                yield return new("temp_embed", [1, c.Frames, d]);
            yield return new("x_embedder.proj.weight", [d, c.InChannels, p, p]);
            yield return new("x_embedder.proj.bias", [d]);
            yield return new("t_embedder.mlp.0.weight", lin(d, f));
            yield return new("t_embedder.mlp.0.bias", [d]);
            yield return new("t_embedder.mlp.2.weight", lin(d, d));
            yield return new("t_embedder.mlp.2.bias", [d]);
            yield return new("y_embedder.embedding_table.weight", lin(c.NumClasses + 1, d));
            for (int i = 0; i < c.Depth; i++)
            {
                string b = $"blocks.{i}.";
                yield return new(b + "attn.qkv.weight", lin(3 * d, d));
                yield return new(b + "attn.qkv.bias", [3 * d]);
                yield return new(b + "attn.proj.weight", lin(d, d));
                yield return new(b + "attn.proj.bias", [d]);
                yield return new(b + "mlp.fc1.weight", lin(c.MlpHidden, d));
                yield return new(b + "mlp.fc1.bias", [c.MlpHidden]);
                yield return new(b + "mlp.fc2.weight", lin(d, c.MlpHidden));
                yield return new(b + "mlp.fc2.bias", [d]);
                yield return new(b + "adaLN_modulation.1.weight", lin(6 * d, d));
                yield return new(b + "adaLN_modulation.1.bias", [6 * d]);
            }
            yield return new("final_layer.adaLN_modulation.1.weight", lin(2 * d, d));
            yield return new("final_layer.adaLN_modulation.1.bias", [2 * d]);
            yield return new("final_layer.linear.weight", lin(p * p * c.OutChannels, d));
            yield return new("final_layer.linear.bias", [p * p * c.OutChannels]);
        }
        else
        {
            yield return new("pos_embed.proj.weight", [d, c.InChannels, p, p]);
            yield return new("pos_embed.proj.bias", [d]);
            for (int i = 0; i < c.Depth; i++)
            {
                string b = $"transformer_blocks.{i}.";
                // diffusers copies the timestep and label embedders into every block; block 0's copy is the one read.
                bool first = i == 0;
                yield return new(b + "norm1.emb.timestep_embedder.linear_1.weight", lin(d, f), first);
                yield return new(b + "norm1.emb.timestep_embedder.linear_1.bias", [d], first);
                yield return new(b + "norm1.emb.timestep_embedder.linear_2.weight", lin(d, d), first);
                yield return new(b + "norm1.emb.timestep_embedder.linear_2.bias", [d], first);
                yield return new(b + "norm1.emb.class_embedder.embedding_table.weight", lin(c.NumClasses + 1, d), first);
                yield return new(b + "norm1.linear.weight", lin(6 * d, d));
                yield return new(b + "norm1.linear.bias", [6 * d]);
                foreach (string qkv in new[] { "to_q", "to_k", "to_v" })
                {
                    yield return new(b + $"attn1.{qkv}.weight", lin(d, d));
                    yield return new(b + $"attn1.{qkv}.bias", [d]);
                }
                yield return new(b + "attn1.to_out.0.weight", lin(d, d));
                yield return new(b + "attn1.to_out.0.bias", [d]);
                yield return new(b + "ff.net.0.proj.weight", lin(c.MlpHidden, d));
                yield return new(b + "ff.net.0.proj.bias", [c.MlpHidden]);
                yield return new(b + "ff.net.2.weight", lin(d, c.MlpHidden));
                yield return new(b + "ff.net.2.bias", [d]);
            }
            yield return new("proj_out_1.weight", lin(2 * d, d));
            yield return new("proj_out_1.bias", [2 * d]);
            yield return new("proj_out_2.weight", lin(p * p * c.OutChannels, d));
            yield return new("proj_out_2.bias", [p * p * c.OutChannels]);
        }
    }

    private static bool IsEmbedderCopy(string key) =>
        key.StartsWith("transformer_blocks.", StringComparison.Ordinal) && key.Contains(".norm1.emb.", StringComparison.Ordinal)
        && !key.StartsWith("transformer_blocks.0.", StringComparison.Ordinal);

    /// <summary>Compares the file with the expected tensors and throws one error listing every difference.</summary>
    private static void CheckTensors(SafetensorsFile file, DitLayout layout, DitConfig config)
    {
        var expected = ExpectedTensors(layout, config).ToDictionary(e => e.Key);
        var missing = new List<string>();
        var misShaped = new List<string>();
        var badType = new List<string>();
        foreach (var e in expected.Values)
        {
            if (!file.TryGet(e.Key, out var info))
            {
                if (e.Required)
                    missing.Add($"{e.Key} {Fmt(e.Shape)}");
                continue;
            }
            if (!info.Shape.SequenceEqual(e.Shape))
                misShaped.Add($"{e.Key}: {Fmt(info.Shape)}, expected {Fmt(e.Shape)}");
            if (!info.DType.IsFloat())
                badType.Add($"{e.Key}: {info.DType}");
        }
        // diffusers keeps its (non-persistent) position embedding out of the state dict, but a stray one is tolerated as diffusers does.
        var unexpected = file.Tensors.Select(t => t.Name)
            .Where(k => !expected.ContainsKey(k) && !(layout == DitLayout.Diffusers && k.StartsWith("pos_embed", StringComparison.Ordinal)))
            .ToList();
        if (missing.Count + misShaped.Count + badType.Count + unexpected.Count == 0)
            return;
        var sb = new StringBuilder($"{file.Path}: the {layout.ToString().ToLowerInvariant()} DiT checkpoint does not match its inferred configuration ({config})");
        Append(sb, "missing", missing);
        Append(sb, "unexpected", unexpected);
        Append(sb, "mis-shaped", misShaped);
        Append(sb, "not floating point", badType);
        throw new CheckpointException(sb.ToString());
    }

    /// <summary>
    /// diffusers stores the timestep and label embedders in every block (<c>transformer_blocks.{i}.norm1.emb.*</c>); its
    /// conversion script writes identical copies and the model here reads block 0's, shared by all blocks as in the
    /// original DiT. A checkpoint whose copies differ (fine-tuned per block) would silently compute something else, so
    /// it is refused. The copies are read with plain file reads, not through the mapping, so that checking them does
    /// not make them resident.
    /// </summary>
    private static void CheckEmbedderCopies(SafetensorsFile file, int depth)
    {
        string[] parts = ["timestep_embedder.linear_1.weight", "timestep_embedder.linear_1.bias", "timestep_embedder.linear_2.weight",
            "timestep_embedder.linear_2.bias", "class_embedder.embedding_table.weight"];
        using var handle = System.IO.File.OpenHandle(file.Path);
        var buffer = new byte[1 << 20];
        for (int i = 1; i < depth; i++)
            foreach (string part in parts)
            {
                string key = $"transformer_blocks.{i}.norm1.emb.{part}";
                if (!file.TryGet(key, out var copy))
                    continue;
                var first = file.GetBytes($"transformer_blocks.0.norm1.emb.{part}");
                for (long done = 0; done < copy.ByteLength;)
                {
                    int n = RandomAccess.Read(handle, buffer.AsSpan(0, (int)Math.Min(buffer.Length, copy.ByteLength - done)), copy.FileOffset + done);
                    if (n <= 0)
                        throw new CheckpointException($"{file.Path}: cannot read '{key}'");
                    if (!first.Slice((int)done, n).SequenceEqual(buffer.AsSpan(0, n)))
                        throw new CheckpointException(
                            $"{file.Path}: '{key}' differs from block 0's copy. This implementation shares one timestep and label " +
                            "embedder across blocks, as the original DiT and diffusers' conversion do; per-block embedders are not supported");
                    done += n;
                }
            }
    }

    private static void Append(StringBuilder sb, string what, List<string> items)
    {
        if (items.Count == 0)
            return;
        sb.Append($"\n  {what} ({items.Count}): ");
        sb.Append(string.Join(", ", items.Take(12)));
        if (items.Count > 12)
            sb.Append($", ... and {items.Count - 12} more");
    }

    /// <summary>
    /// The file keys holding the original-layout parameter <paramref name="originalKey"/>; several keys are
    /// concatenated along the first dimension (diffusers splits the fused qkv into to_q, to_k, to_v).
    /// </summary>
    internal string[] SourceKeys(string originalKey)
    {
        if (Layout == DitLayout.Original)
            return [originalKey];
        // Mapping of diffusers' scripts/convert_dit_to_diffusers.py, read backwards (model-spec §2.1).
        string[] parts = originalKey.Split('.');
        if (parts[0] == "blocks")
        {
            string b = $"transformer_blocks.{parts[1]}.";
            string rest = string.Join('.', parts[2..]);
            string kind = parts[^1]; // weight | bias
            return rest switch
            {
                _ when rest.StartsWith("attn.qkv.", StringComparison.Ordinal) =>
                    [b + "attn1.to_q." + kind, b + "attn1.to_k." + kind, b + "attn1.to_v." + kind],
                _ when rest.StartsWith("attn.proj.", StringComparison.Ordinal) => [b + "attn1.to_out.0." + kind],
                _ when rest.StartsWith("mlp.fc1.", StringComparison.Ordinal) => [b + "ff.net.0.proj." + kind],
                _ when rest.StartsWith("mlp.fc2.", StringComparison.Ordinal) => [b + "ff.net.2." + kind],
                _ when rest.StartsWith("adaLN_modulation.1.", StringComparison.Ordinal) => [b + "norm1.linear." + kind],
                _ => throw new KeyNotFoundException(originalKey),
            };
        }
        const string emb = "transformer_blocks.0.norm1.emb.";
        return originalKey switch
        {
            "x_embedder.proj.weight" => ["pos_embed.proj.weight"],
            "x_embedder.proj.bias" => ["pos_embed.proj.bias"],
            "t_embedder.mlp.0.weight" => [emb + "timestep_embedder.linear_1.weight"],
            "t_embedder.mlp.0.bias" => [emb + "timestep_embedder.linear_1.bias"],
            "t_embedder.mlp.2.weight" => [emb + "timestep_embedder.linear_2.weight"],
            "t_embedder.mlp.2.bias" => [emb + "timestep_embedder.linear_2.bias"],
            "y_embedder.embedding_table.weight" => [emb + "class_embedder.embedding_table.weight"],
            "final_layer.adaLN_modulation.1.weight" => ["proj_out_1.weight"],
            "final_layer.adaLN_modulation.1.bias" => ["proj_out_1.bias"],
            "final_layer.linear.weight" => ["proj_out_2.weight"],
            "final_layer.linear.bias" => ["proj_out_2.bias"],
            _ => [],  // pos_embed: not stored in the diffusers layout, recomputed
        };
    }

    /// <summary>Unmaps the file: models whose weights are views of it must not be used afterwards.</summary>
    public void Dispose() => File.Dispose();

    private static int[] Shape(SafetensorsFile file, string key, int rank)
    {
        if (!file.TryGet(key, out var info))
            throw new CheckpointException($"{file.Path}: missing '{key}', which every DiT checkpoint of this layout has");
        if (info.Shape.Length != rank)
            throw new CheckpointException($"{file.Path}: '{key}' has shape {Fmt(info.Shape)}, expected rank {rank}");
        return info.ShapeToArray();
    }

    private static int? MetaInt(SafetensorsFile file, string key) =>
        file.Metadata.TryGetValue(key, out var s) && int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v : null;

    internal static string Fmt(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";
}

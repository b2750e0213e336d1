// BlockDance-Ada's decision network (BlockDance paper §3.4, Fig. 6), the C# side of tools/ada_net.py (whose docstring
// is the contract: keys, metadata, forward, greedy plan). It reads the latent after the first ρ·S steps and the class
// label and gives, for each of the K = S − ρ·S remaining steps, the probability that the step is a Cache step.
// Shapes: B batch, C channels (per frame), F frames (1: an image network), H = W = input size, p patch, T = (H/p)²
// tokens, D hidden, K outputs. A video network reads a clip [B, F, C, H, W] viewed as [B, F·C, H, W] (frames stacked as
// channels, the same memory; the sampler's latent (B·F, C, H, W) is that view too).
//
//   latent [B, F·C, H, W] --x_embedder (conv p×p as im2col + GEMM) + pos_embed--> h [B, T, D]
//   labels [B]          --y_embedder table--------------------------------------> c [B, D]   (no timestep)
//   h = DiT block_i(h, c), i = 0 … depth−1     (the DiT's own adaLN-Zero block, keys blocks.{i}.*)
//   pooled = mean_T LayerNorm(h)  (no affine, eps 1e-6)                                        [B, D]
//   logits = head.fc2(GELU_tanh(head.fc1(pooled)))                                             [B, K]
//   p = sigmoid(logits), on the host after the download of the K logits per image
using System.Globalization;
using System.Runtime.InteropServices;
using BlockDance.Dit.Caching;
using BlockDance.Kernels;
using BlockDance.Runtime;
using BlockDance.Runtime.Safetensors;

namespace BlockDance.Dit;

/// <summary>
/// The decision network's shape (<c>input_size</c>, <c>in_channels</c>, <c>num_frames</c>, <c>patch_size</c>, <c>hidden_size</c>,
/// <c>depth</c>, <c>num_heads</c>, <c>num_classes</c>) and the run it decides for (<c>steps</c> S, <c>rho_steps</c> ρ·S,
/// <c>max_reuse</c>, <c>boundary</c>, <c>threshold</c>, <c>base_model</c>), as stored in the weights' metadata.
/// </summary>
public sealed record AdaConfig
{
    /// <summary>The metadata <c>model</c> value of a decision network.</summary>
    public const string ModelName = "blockdance-ada";

    /// <summary>Latent height and width H = W the network reads.</summary>
    public required int InputSize { get; init; }
    /// <summary>Latent channels C per frame.</summary>
    public required int InChannels { get; init; }
    /// <summary>
    /// Frames F of the clips the network reads (metadata <c>num_frames</c>; absent: 1, an image network). A video
    /// network's patch embedding reads the F frames stacked as channels: F·C input channels.
    /// </summary>
    public int Frames { get; init; } = 1;
    /// <summary>Input channels of the patch embedding: F·C.</summary>
    public int EmbedChannels => Frames * InChannels;
    /// <summary>Patch size p of the token embedding.</summary>
    public required int PatchSize { get; init; }
    /// <summary>Hidden size D.</summary>
    public required int HiddenSize { get; init; }
    /// <summary>Transformer blocks of the network.</summary>
    public required int Depth { get; init; }
    /// <summary>Attention heads.</summary>
    public required int Heads { get; init; }
    /// <summary>Classes (the embedding table has one more row, the unused null class).</summary>
    public required int NumClasses { get; init; }
    /// <summary>Sampling steps S of the run the network decides for.</summary>
    public required int Steps { get; init; }
    /// <summary>ρ·S: the steps before the decision (steps 0 … ρ·S−2 Full, step ρ·S−1 Cache).</summary>
    public required int RhoSteps { get; init; }
    /// <summary>The most consecutive Reuse steps the greedy plan allows (our bound; the paper has none).</summary>
    public required int MaxReuse { get; init; }
    /// <summary>The BlockDance boundary of the base model: Reuse steps recompute blocks boundary … depth−1.</summary>
    public required int Boundary { get; init; }
    /// <summary>The greedy cut-off: a step is Cache when its probability is at least this.</summary>
    public double Threshold { get; init; } = 0.5;
    /// <summary>The base model the network was trained for (informative; may be empty).</summary>
    public string BaseModel { get; init; } = "";

    /// <summary>K = S − ρ·S: one decision per step after the first ρ·S.</summary>
    public int Outputs => Steps - RhoSteps;
    /// <summary>Tokens T = (H/p)².</summary>
    public int Tokens => InputSize / PatchSize * (InputSize / PatchSize);

    /// <summary>
    /// Reads the configuration from a safetensors file's metadata; <see cref="CheckpointException"/> names the file and
    /// the field when the file is not a decision network or a field is missing, not an integer or does not fit.
    /// </summary>
    public static AdaConfig FromMetadata(IReadOnlyDictionary<string, string> meta, string path)
    {
        meta.TryGetValue("model", out var model);
        if (model != ModelName)
            throw new CheckpointException($"{path}: not a BlockDance-Ada decision network (metadata model = '{model ?? "(none)"}'" +
                (model is "dit" or null ? ", a DiT checkpoint?" : "") + $"); expected model = '{ModelName}' as tools/ada_net.py writes");
        int Int(string key) =>
            !meta.TryGetValue(key, out var v) ? throw new CheckpointException($"{path}: metadata field '{key}' is missing")
            : int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) ? i
            : throw new CheckpointException($"{path}: metadata field '{key}' = '{v}' is not an integer");
        double threshold = 0.5;
        if (meta.TryGetValue("threshold", out var tv) && !double.TryParse(tv, NumberStyles.Float, CultureInfo.InvariantCulture, out threshold))
            throw new CheckpointException($"{path}: metadata field 'threshold' = '{tv}' is not a number");
        var c = new AdaConfig
        {
            InputSize = Int("input_size"), InChannels = Int("in_channels"), PatchSize = Int("patch_size"),
            HiddenSize = Int("hidden_size"), Depth = Int("depth"), Heads = Int("num_heads"), NumClasses = Int("num_classes"),
            Steps = Int("steps"), RhoSteps = Int("rho_steps"), MaxReuse = Int("max_reuse"), Boundary = Int("boundary"),
            Threshold = threshold, BaseModel = meta.TryGetValue("base_model", out var b) ? b : "",
            Frames = meta.ContainsKey("num_frames") ? Int("num_frames") : 1,
        };
        string? bad =
            c.InputSize <= 0 || c.PatchSize <= 0 || c.InputSize % c.PatchSize != 0 ? $"input_size {c.InputSize} is not a positive multiple of patch_size {c.PatchSize}"
            : c.HiddenSize <= 0 || c.Heads <= 0 || c.HiddenSize % c.Heads != 0 ? $"hidden_size {c.HiddenSize} is not a positive multiple of num_heads {c.Heads}"
            : c.InChannels <= 0 || c.Depth < 0 || c.NumClasses <= 0 ? $"in_channels {c.InChannels}, depth {c.Depth}, num_classes {c.NumClasses} must be positive"
            : c.Frames < 1 ? $"num_frames {c.Frames} must be ≥ 1"
            : c.RhoSteps < 1 || c.RhoSteps >= c.Steps ? $"rho_steps {c.RhoSteps} must lie in [1, steps − 1] (steps {c.Steps})"
            : c.MaxReuse < 0 ? $"max_reuse {c.MaxReuse} must be ≥ 0"
            : c.Boundary < 1 ? $"boundary {c.Boundary} must be ≥ 1"
            : !(c.Threshold >= 0 && c.Threshold <= 1) ? $"threshold {c.Threshold} must lie in [0, 1]"
            : null;
        return bad is null ? c : throw new CheckpointException($"{path}: the metadata does not describe a valid network: {bad}");
    }

    /// <summary>Opens <paramref name="path"/> and reads only its configuration (no weights are loaded).</summary>
    public static AdaConfig Read(string path)
    {
        using var file = SafetensorsFile.Open(path);
        return FromMetadata(file.Metadata, path);
    }

    /// <summary>Every tensor the network's file holds, with its shape (the keys of tools/ada_net.py).</summary>
    internal IEnumerable<(string Key, int[] Shape)> ExpectedTensors()
    {
        int d = HiddenSize;
        yield return ("pos_embed", [1, Tokens, d]);
        yield return ("x_embedder.proj.weight", [d, EmbedChannels, PatchSize, PatchSize]);
        yield return ("x_embedder.proj.bias", [d]);
        yield return ("y_embedder.embedding_table.weight", [NumClasses + 1, d]);
        for (int i = 0; i < Depth; i++)
        {
            foreach (var (name, rows, cols) in new[] { ("adaLN_modulation.1", 6 * d, d), ("attn.qkv", 3 * d, d), ("attn.proj", d, d), ("mlp.fc1", 4 * d, d), ("mlp.fc2", d, 4 * d) })
            {
                yield return ($"blocks.{i}.{name}.weight", [rows, cols]);
                yield return ($"blocks.{i}.{name}.bias", [rows]);
            }
        }
        yield return ("head.fc1.weight", [d, d]);
        yield return ("head.fc1.bias", [d]);
        yield return ("head.fc2.weight", [Outputs, d]);
        yield return ("head.fc2.bias", [Outputs]);
    }

    /// <summary>The DiT-shaped configuration whose blocks and activations the network reuses (no timestep, no sigma;
    /// F·C input channels).</summary>
    internal DitConfig AsDitConfig() => new()
    {
        Depth = Depth, HiddenSize = HiddenSize, Heads = Heads, PatchSize = PatchSize, InChannels = EmbedChannels,
        LearnSigma = false, NumClasses = NumClasses, InputSize = InputSize, Numerics = DitNumerics.Original,
    };
}

/// <summary>
/// BlockDance-Ada's decision network on any device (CPU, CUDA, cuda-emu), built from the DiT's own pieces:
/// <see cref="PatchEmbedder"/>, <see cref="LabelEmbedder"/>, <see cref="DitBlock"/> and <see cref="DitActivations"/>.
/// The mean over tokens uses no op of its own: <see cref="IOps.SwapFrameTokenAxes"/> turns the normalised tokens
/// (B, T, D) into (B, D, T) (a pure permutation, bit-exact) and <see cref="IOps.Linear"/> against a row of 1/T sums
/// them in float32 (the row is exact in every storage type when T is a power of two, as for every square grid of
/// a power-of-two size). The sigmoid of the K logits runs on the host after their download (<see cref="Probabilities"/>).
/// Ownership as for <see cref="DitModel"/>: weights are views of the mapped file on the CPU device (with a lease on
/// the mapping) or uploaded copies; <see cref="Dispose"/> releases them.
/// </summary>
public sealed class AdaDecisionNet : IDisposable
{
    private readonly WeightLoader _weights;

    private AdaDecisionNet(AdaConfig config, IOps ops, WeightLoader w)
    {
        Config = config;
        Ops = ops;
        var dit = config.AsDitConfig();
        PatchEmbedder = PatchEmbedder.Load(w, dit);                                                 // x_embedder.proj.*
        PositionEmbedding = w.Load("pos_embed", config.Tokens, config.HiddenSize);                  // (T, D)
        LabelEmbedder = new LabelEmbedder(w.Load("y_embedder.embedding_table.weight"));             // (classes + 1, D)
        Blocks = Enumerable.Range(0, config.Depth).Select(i => DitBlock.Load(w, i, config.Heads, dit.Numerics)).ToArray();
        HeadFc1 = w.Linear("head.fc1");                                                             // (D, D)
        HeadFc2 = w.Linear("head.fc2");                                                             // (K, D)
        _weights = w;
    }

    /// <summary>The network's shape and the run it decides for.</summary>
    public AdaConfig Config { get; }
    /// <summary>The backend the weights live on.</summary>
    public IOps Ops { get; }
    /// <summary>Patch embedding of the latent (<c>x_embedder.proj.*</c>).</summary>
    public PatchEmbedder PatchEmbedder { get; }
    /// <summary>The fixed 2-D sin-cos position embedding (T, D) (<c>pos_embed</c>).</summary>
    public Tensor PositionEmbedding { get; }
    /// <summary>Class embedding (<c>y_embedder.embedding_table.weight</c>).</summary>
    public LabelEmbedder LabelEmbedder { get; }
    /// <summary>The transformer blocks (<c>blocks.{i}.*</c>).</summary>
    public IReadOnlyList<DitBlock> Blocks { get; }
    /// <summary>The head's first layer, D → D, followed by GELU (tanh) (<c>head.fc1</c>).</summary>
    public Linear HeadFc1 { get; }
    /// <summary>The head's second layer, D → K (<c>head.fc2</c>).</summary>
    public Linear HeadFc2 { get; }

    /// <summary>
    /// Loads a network written by <c>tools/ada_net.py</c> onto <paramref name="ops"/>' device. A file that is not a
    /// decision network (e.g. a DiT checkpoint), a missing or unexpected key, or a tensor whose shape does not fit the
    /// metadata's configuration throws <see cref="CheckpointException"/> naming the file and the key.
    /// </summary>
    public static AdaDecisionNet Load(string path, IOps ops)
    {
        var file = SafetensorsFile.Open(path);
        WeightLoader? loader = null;
        try
        {
            var config = AdaConfig.FromMetadata(file.Metadata, path);
            var expected = config.ExpectedTensors().ToList();
            foreach (var (key, shape) in expected)
            {
                if (!file.TryGet(key, out var info))
                    throw new CheckpointException($"{path}: missing tensor '{key}' (a BlockDance-Ada network of depth {config.Depth} needs it)");
                if (!info.Shape.SequenceEqual(shape))
                    throw new CheckpointException($"{path}: tensor '{key}' has shape {DitCheckpoint.Fmt(info.Shape)}; the metadata's configuration needs {DitCheckpoint.Fmt(shape)}");
            }
            var unexpected = file.Tensors.Select(t => t.Name).Except(expected.Select(e => e.Key)).ToList();
            if (unexpected.Count > 0)
                throw new CheckpointException($"{path}: unexpected tensors for a BlockDance-Ada network of depth {config.Depth}: {string.Join(", ", unexpected.Take(5))}");
            loader = new WeightLoader(file, key => [key], ops, "the AdaDecisionNet");
            return new AdaDecisionNet(config, ops, loader);
        }
        catch
        {
            loader?.Dispose();
            throw;
        }
        finally
        {
            file.Dispose();   // views hold their own lease on the mapping
        }
    }

    /// <summary>Allocates the buffers of one forward for <paramref name="batch"/> images, reused by every call at that batch.</summary>
    public AdaActivations CreateActivations(int batch) => new(this, batch);

    /// <summary>
    /// The forward up to the logits: latent (B, C, H, W) in the activation type — for a video network (F frames) a clip
    /// batch as (B·F, C, H, W), (B, F, C, H, W) or (B, F·C, H, W), read as (B, F·C, H, W) —, labels (B) I32 (each in
    /// [0, classes)) → <c>a.Logits</c> (B, K) on the device. <paramref name="observer"/> sees each block's output.
    /// </summary>
    /// <exception cref="ArgumentException">The latent's element count or its last two dimensions do not fit the
    /// network and the batch.</exception>
    public void Forward(Tensor latent, Tensor labels, AdaActivations a, IBlockObserver? observer = null)
    {
        var d = a.Dit;
        var input = a.InputView(latent);                                                      // (B, F·C, H, W)
        PatchEmbedder.Forward(Ops, input, d.Columns, d.PositionEmbedding, d.X);              // (B, T, D)
        LabelEmbedder.Forward(Ops, labels, d.C);                                              // (B, D): c
        Ops.Silu(d.C, d.SiluC);                                                               // (B, D): what adaLN reads
        for (int i = 0; i < Blocks.Count; i++)   // an index loop: no enumerator allocated per call
        {
            Blocks[i].Forward(Ops, d);                                                        // (B, T, D)
            observer?.OnBlockOutput(i, d.X);
        }
        Ops.LayerNormModulate(d.X, a.ZeroModulation, 0, 1, 1e-6f, d.Normed);                  // (B, T, D): LN(h)·(1+0)+0
        Ops.SwapFrameTokenAxes(a.NormedAsBtd1, a.Transposed);                                 // (B, D, T, 1)
        Ops.Linear(a.TransposedRows, a.MeanRow, null, a.PooledRows);                          // (B·D, 1): Σ_t x/T
        HeadFc1.Forward(Ops, a.Pooled, a.HeadHidden, Activation.GeluTanh);                   // (B, D)
        HeadFc2.Forward(Ops, a.HeadHidden, a.Logits);                                         // (B, K)
    }

    /// <summary>
    /// <see cref="Forward"/>, then one download of the B·K logits and <c>p = 1/(1 + e^(−logit))</c> on the host into
    /// <paramref name="probabilities"/> (B·K, image-major): the probability that step ρ·S + j is a Cache step.
    /// </summary>
    public void Probabilities(Tensor latent, Tensor labels, AdaActivations a, Span<float> probabilities)
    {
        Forward(latent, labels, a);
        a.DownloadLogits();
        var logits = a.HostLogits;
        if (probabilities.Length != logits.Length)
            throw new ArgumentException($"probabilities hold {probabilities.Length} values; the batch needs {logits.Length}", nameof(probabilities));
        for (int i = 0; i < logits.Length; i++)
            probabilities[i] = (float)(1.0 / (1.0 + Math.Exp(-logits[i])));
    }

    /// <summary>
    /// The greedy plan of one image (the rule of <c>tools/ada_net.py greedy_plan</c>): steps 0 … ρ·S−2 Full, step
    /// ρ·S−1 Cache; then for each of the K probabilities in step order, Cache when <c>p ≥ threshold</c> or when the last
    /// <paramref name="maxReuse"/> steps were all Reuse, else Reuse. <paramref name="kinds"/> receives ρ·S + K kinds.
    /// </summary>
    public static void GreedyPlan(ReadOnlySpan<float> probabilities, int rhoSteps, double threshold, int maxReuse, Span<StepKind> kinds)
    {
        if (rhoSteps < 1 || kinds.Length != rhoSteps + probabilities.Length)
            throw new ArgumentException($"a plan of {kinds.Length} steps for ρ·S = {rhoSteps} and {probabilities.Length} probabilities");
        kinds[..(rhoSteps - 1)].Fill(StepKind.Full);
        kinds[rhoSteps - 1] = StepKind.Cache;
        int run = 0;
        for (int j = 0; j < probabilities.Length; j++)
        {
            bool cache = probabilities[j] >= threshold || run >= maxReuse;
            kinds[rhoSteps + j] = cache ? StepKind.Cache : StepKind.Reuse;
            run = cache ? 0 : run + 1;
        }
    }

    /// <summary>Releases the weights (owned copies and the lease on the mapped file). Idempotent.</summary>
    public void Dispose() => _weights.Dispose();
}

/// <summary>
/// The buffers of one forward of an <see cref="AdaDecisionNet"/> for a fixed batch, allocated once: a
/// <see cref="DitActivations"/> arena for the embedding and the blocks (its timestep and final-layer buffers stay
/// unused), plus the pooling and head tensors and the host copy of the logits.
/// </summary>
public sealed class AdaActivations : IDisposable
{
    private readonly List<Tensor> _owned = [];
    private readonly float[] _host;

    internal AdaActivations(AdaDecisionNet net, int batch)
    {
        var c = net.Config;
        var ops = net.Ops;
        int t = c.Tokens, d = c.HiddenSize;
        Batch = batch;
        Dit = new DitActivations(ops, c.AsDitConfig(), net.PositionEmbedding, batch, c.InputSize, c.InputSize);
        try
        {
            var type = ops.ActivationType;
            Tensor Own(Tensor x)
            {
                _owned.Add(x);
                return x;
            }
            ZeroModulation = Own(ops.Device.FromFloats(new float[batch * 2 * d], type, batch, 2 * d));   // (B, 2D)
            Transposed = Own(ops.Device.Allocate(type, batch, d, t, 1));                                 // (B, D, T, 1)
            MeanRow = Own(ops.Device.FromFloats(Enumerable.Repeat(1f / t, t).ToArray(), type, 1, t));    // (1, T)
            Pooled = Own(ops.Device.Allocate(type, batch, d));                                           // (B, D)
            HeadHidden = Own(ops.Device.Allocate(type, batch, d));                                       // (B, D)
            Logits = Own(ops.Device.Allocate(type, batch, c.Outputs));                                   // (B, K)
        }
        catch
        {
            Dispose();
            throw;
        }
        NormedAsBtd1 = Dit.Normed.Reshape(batch, t, d, 1);
        _inputShape = [batch, c.EmbedChannels, c.InputSize, c.InputSize];
        _frames = c.Frames;
        TransposedRows = Transposed.Reshape(batch * d, t);
        PooledRows = Pooled.Reshape(batch * d, 1);
        _host = new float[batch * c.Outputs];
        _raw = new byte[Logits.ByteCount];
        _ops = ops;
    }

    private readonly IOps _ops;
    private readonly byte[] _raw;   // the logits' bytes in the activation type
    private readonly int[] _inputShape;   // (B, F·C, H, W)
    private readonly int _frames;
    private Tensor? _lastLatent, _lastView;   // the last latent's (B, F·C, H, W) view: a repeated call allocates nothing

    /// <summary>
    /// <paramref name="latent"/> as the network reads it, (B, F·C, H, W): the same memory viewed with the frames stacked
    /// as channels. Accepts (B, F·C, H, W), (B·F, C, H, W) or (B, F, C, H, W).
    /// </summary>
    internal Tensor InputView(Tensor latent)
    {
        if (ReferenceEquals(latent, _lastLatent))
            return _lastView!;
        long want = (long)_inputShape[0] * _inputShape[1] * _inputShape[2] * _inputShape[3];
        int h = _inputShape[2];
        bool fits = latent.Count == want && latent.Rank is 4 or 5 && latent.Dim(latent.Rank - 1) == h && latent.Dim(latent.Rank - 2) == h
            && (latent.Rank == 4 ? latent.Dim(0) == _inputShape[0] * _frames || latent.Dim(0) == _inputShape[0] : latent.Dim(0) == _inputShape[0] && latent.Dim(1) == _frames);
        if (!fits)
            throw new ArgumentException($"the decision network reads {_inputShape[0]} " + (_frames > 1
                ? $"clips of {_frames} frames of {_inputShape[1] / _frames}×{h}×{h} ((B·F, C, H, W), (B, F, C, H, W) or (B, F·C, H, W), {want} values)"
                : $"latents of {_inputShape[1]}×{h}×{h}") + $"; the latent is {latent.ShapeString}", nameof(latent));
        var view = latent.HasShape(_inputShape) ? latent : latent.Reshape(_inputShape);
        (_lastLatent, _lastView) = (latent, view);
        return view;
    }

    /// <summary>Images B the buffers were allocated for.</summary>
    public int Batch { get; }
    /// <summary>The DiT arena the embedding and the blocks run in (X is the residual stream (B, T, D)).</summary>
    public DitActivations Dit { get; }
    /// <summary>Zeros (B, 2D): LayerNormModulate with it is the affine-free LayerNorm.</summary>
    public Tensor ZeroModulation { get; } = null!;
    /// <summary>The normalised tokens as (B, D, T, 1).</summary>
    public Tensor Transposed { get; } = null!;
    /// <summary>A row of 1/T (1, T): the mean over tokens as a GEMM.</summary>
    public Tensor MeanRow { get; } = null!;
    /// <summary>The pooled features (B, D).</summary>
    public Tensor Pooled { get; } = null!;
    /// <summary>GELU(head.fc1(pooled)) (B, D).</summary>
    public Tensor HeadHidden { get; } = null!;
    /// <summary>The logits (B, K) in the activation type.</summary>
    public Tensor Logits { get; } = null!;
    /// <summary>The logits of the last <see cref="DownloadLogits"/>, (B·K) image-major on the host.</summary>
    public ReadOnlySpan<float> HostLogits => _host;
    internal Tensor NormedAsBtd1 { get; }
    internal Tensor TransposedRows { get; }
    internal Tensor PooledRows { get; }

    /// <summary>Copies the logits to the host (<see cref="HostLogits"/>, converted to float32); waits for the device.</summary>
    public void DownloadLogits()
    {
        _ops.Device.Download(Logits, _raw);
        switch (Logits.DType)
        {
            case DType.F32:
                MemoryMarshal.Cast<byte, float>(_raw).CopyTo(_host);
                break;
            case DType.F16:
                NumericConversions.HalfToSingle(MemoryMarshal.Cast<byte, Half>(_raw), _host);
                break;
            default:
                NumericConversions.BFloat16ToSingle(MemoryMarshal.Cast<byte, ushort>(_raw), _host);
                break;
        }
    }

    /// <summary>Frees every buffer. Disposing twice is harmless.</summary>
    public void Dispose()
    {
        Dit.Dispose();
        foreach (var t in _owned)
            t.Dispose();
        _owned.Clear();
    }
}

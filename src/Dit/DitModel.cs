// A Diffusion Transformer (Peebles & Xie, "Scalable Diffusion Models with Transformers", ICCV 2023), written to follow
// https://github.com/facebookresearch/DiT/blob/ed81ce2229091fd4ecc9a223645f95cf379d582b/models.py top to bottom.
// Parameters are read by their original key names; DitCheckpoint maps them for the diffusers layout. The numerics that
// differ between the two references (timestep divisor, MLP LayerNorm eps, guided channels) come from DitConfig.Numerics.
// Shapes: B batch, T tokens, D hidden, p patch, C in channels, C' out channels (2C with learned sigma).
using BlockDance.Kernels;
using BlockDance.Runtime;

namespace BlockDance.Dit;

/// <summary>A linear layer's parameters: <c>y = x·Wᵀ + b</c>, W [out, in].</summary>
public sealed record Linear(Tensor Weight, Tensor Bias)
{
    /// <summary>Output features: the weight's rows.</summary>
    public int Out => Weight.Dim(0);
    /// <summary>Input features: the weight's columns.</summary>
    public int In => Weight.Dim(1);

    /// <c>y = act(x·Wᵀ + b)</c> on <paramref name="ops"/>; x (…, In) → y (…, Out).
    public void Forward(IOps ops, Tensor x, Tensor y, Activation act = Activation.None) => ops.Linear(x, Weight, Bias, y, act);
}

/// <summary>Embeds scalar timesteps: sinusoidal features [B, 256] → Linear → SiLU → Linear → [B, D].</summary>
public sealed class TimestepEmbedder(Linear mlp0, Linear mlp2, int frequencyShift)
{
    /// <summary>The first linear layer, 256 → D (key <c>t_embedder.mlp.0</c>).</summary>
    public Linear Mlp0 { get; } = mlp0;   // t_embedder.mlp.0
    /// <summary>The second linear layer, D → D (key <c>t_embedder.mlp.2</c>).</summary>
    public Linear Mlp2 { get; } = mlp2;   // t_embedder.mlp.2

    /// <summary>Embeds the timesteps t (B) into <paramref name="tEmb"/> (B, D), using the frequency and hidden tensors of <paramref name="a"/> as scratch.</summary>
    public void Forward(IOps ops, Tensor t, DitActivations a, Tensor tEmb) => Forward(ops, t, a.Frequencies, a.TimeHidden, tEmb);

    /// <summary>The same with explicit buffers: <paramref name="frequencies"/> (B, 256), <paramref name="hidden"/> (B, D), <paramref name="tEmb"/> (B, D).</summary>
    public void Forward(IOps ops, Tensor t, Tensor frequencies, Tensor hidden, Tensor tEmb)
    {
        ops.TimestepEmbedding(t, frequencyShift, frequencies);     // (B, 256) [cos | sin]
        Mlp0.Forward(ops, frequencies, hidden, Activation.Silu);   // (B, D)
        Mlp2.Forward(ops, hidden, tEmb);                           // (B, D)
    }
}

/// <summary>Class labels → vectors; row <c>num_classes</c> is the null class used for classifier-free guidance.</summary>
public sealed class LabelEmbedder(Tensor table)
{
    /// <summary>The embedding table (classes + 1, D), key <c>y_embedder.embedding_table.weight</c>.</summary>
    public Tensor Table { get; } = table;  // y_embedder.embedding_table.weight (classes + 1, D)

    /// <summary>Looks up the rows of <paramref name="labels"/> (B, I32) into <paramref name="yEmb"/> (B, D).</summary>
    public void Forward(IOps ops, Tensor labels, Tensor yEmb) => ops.EmbeddingLookup(Table, labels, yEmb);
}

/// <summary>
/// A DiT block with adaLN-Zero conditioning:
/// <code>
/// shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = Linear(SiLU(c)).chunk(6)
/// x = x + gate_msa · Attn(LN(x)·(1 + scale_msa) + shift_msa)
/// x = x + gate_mlp · MLP(LN(x)·(1 + scale_mlp) + shift_mlp)
/// </code>
/// </summary>
public sealed class DitBlock(int index, Linear adaLN, Linear qkv, Linear proj, Linear fc1, Linear fc2, int heads, DitNumerics numerics)
{
    // Chunks of the modulation vector, in the order of models.py.
    private const int ShiftMsa = 0, ScaleMsa = 1, GateMsa = 2, ShiftMlp = 3, ScaleMlp = 4, GateMlp = 5;

    /// <summary>The block's position in the model, from 0.</summary>
    public int Index { get; } = index;
    /// <summary>The adaLN modulation layer, D → 6D (<c>blocks.{i}.adaLN_modulation.1</c>).</summary>
    public Linear AdaLN { get; } = adaLN;  // blocks.{i}.adaLN_modulation.1  (6D, D)
    /// <summary>The attention's query-key-value projection, D → 3D (<c>blocks.{i}.attn.qkv</c>).</summary>
    public Linear Qkv { get; } = qkv;      // blocks.{i}.attn.qkv            (3D, D)
    /// <summary>The attention's output projection, D → D (<c>blocks.{i}.attn.proj</c>).</summary>
    public Linear Proj { get; } = proj;    // blocks.{i}.attn.proj           (D, D)
    /// <summary>The MLP's first layer, D → 4D, followed by GELU (tanh) (<c>blocks.{i}.mlp.fc1</c>).</summary>
    public Linear Fc1 { get; } = fc1;      // blocks.{i}.mlp.fc1             (4D, D)
    /// <summary>The MLP's second layer, 4D → D (<c>blocks.{i}.mlp.fc2</c>).</summary>
    public Linear Fc2 { get; } = fc2;      // blocks.{i}.mlp.fc2             (D, 4D)

    /// <summary>Block <paramref name="i"/> by its checkpoint keys <c>blocks.{i}.*</c> (DiT and Latte name them alike).</summary>
    internal static DitBlock Load(WeightLoader w, int i, int heads, DitNumerics numerics) => new(i,
        w.Linear($"blocks.{i}.adaLN_modulation.1"), w.Linear($"blocks.{i}.attn.qkv"), w.Linear($"blocks.{i}.attn.proj"),
        w.Linear($"blocks.{i}.mlp.fc1"), w.Linear($"blocks.{i}.mlp.fc2"), heads, numerics);

    /// <summary>Updates <c>a.X</c> (B, T, D) in place; <c>a.SiluC</c> (B, D) is SiLU of the conditioning.</summary>
    public void Forward(IOps ops, DitActivations a)
    {
        ModulatedInput(ops, a);                                                           // (B, T, D)
        Qkv.Forward(ops, a.Normed, a.Qkv);                                                // (B, T, 3D)
        ops.Attention(a.Qkv, heads, a.Attended);                                          // (B, T, D)
        Proj.Forward(ops, a.Attended, a.Residual);                                        // (B, T, D)
        ops.GatedResidualAdd(a.X, a.Residual, a.Modulation, GateMsa);
        ops.LayerNormModulate(a.X, a.Modulation, ShiftMlp, ScaleMlp, numerics.MlpNormEps, a.Normed);
        Fc1.Forward(ops, a.Normed, a.Hidden, Activation.GeluTanh);                        // (B, T, 4D)
        Fc2.Forward(ops, a.Hidden, a.Residual);                                           // (B, T, D)
        ops.GatedResidualAdd(a.X, a.Residual, a.Modulation, GateMlp);
    }

    /// <summary>
    /// The attention branch's input <c>a.Normed = LN(x)·(1 + scale_msa) + shift_msa</c> (with <c>a.Modulation</c>), the
    /// first two ops of <see cref="Forward"/>; TeaCache's indicator reads it for block 0.
    /// </summary>
    public void ModulatedInput(IOps ops, DitActivations a)
    {
        AdaLN.Forward(ops, a.SiluC, a.Modulation);                                        // (B, 6D)
        ops.LayerNormModulate(a.X, a.Modulation, ShiftMsa, ScaleMsa, numerics.AttentionNormEps, a.Normed); // (B, T, D)
    }
}

/// <summary><c>x = Linear(LN(x)·(1 + scale) + shift)</c> with <c>shift, scale = Linear(SiLU(c)).chunk(2)</c>, then unpatchify.</summary>
public sealed class FinalLayer(Linear adaLN, Linear linear, int patch, float eps)
{
    /// <summary>The adaLN modulation layer, D → 2D (<c>final_layer.adaLN_modulation.1</c>).</summary>
    public Linear AdaLN { get; } = adaLN;   // final_layer.adaLN_modulation.1 (2D, D)
    /// <summary>The output projection, D → p·p·C' (<c>final_layer.linear</c>).</summary>
    public Linear Linear { get; } = linear; // final_layer.linear             (p·p·C', D)

    /// <summary>The final layer by its checkpoint keys <c>final_layer.*</c>.</summary>
    internal static FinalLayer Load(WeightLoader w, DitConfig c) =>
        new(w.Linear("final_layer.adaLN_modulation.1"), w.Linear("final_layer.linear"), c.PatchSize, c.Numerics.FinalNormEps);

    /// <summary>Modulates and projects <c>a.X</c> (B, T, D), then unpatchifies into <paramref name="output"/> (B, C', H, W).</summary>
    public void Forward(IOps ops, DitActivations a, Tensor output)
    {
        AdaLN.Forward(ops, a.SiluC, a.FinalModulation);                           // (B, 2D): shift, scale
        ops.LayerNormModulate(a.X, a.FinalModulation, 0, 1, eps, a.Normed);       // (B, T, D)
        Linear.Forward(ops, a.Normed, a.Patches);                                  // (B, T, p·p·C')
        ops.Unpatchify(a.Patches, patch, output);                                  // (B, C', H, W)
    }
}

/// <summary>
/// timm's <c>PatchEmbed</c> plus the fixed position embedding: <c>x = Conv2d(C, D, kernel = stride = p)(latent) + pos_embed</c>,
/// computed as im2col and a GEMM. Latte applies it to every frame.
/// </summary>
public sealed class PatchEmbedder(Tensor weight, Tensor bias, int patch)
{
    /// <summary><c>x_embedder.proj.weight</c> viewed as (D, C·p·p).</summary>
    public Tensor Weight { get; } = weight;

    /// <summary><c>x_embedder.proj.bias</c> (D).</summary>
    public Tensor Bias { get; } = bias;

    /// <summary>latent (B, C, H, W) → <paramref name="x"/> (B, T, D) through <paramref name="columns"/> (B, T, C·p·p); pos (T, D).</summary>
    public void Forward(IOps ops, Tensor latent, Tensor columns, Tensor pos, Tensor x)
    {
        ops.Patchify(latent, patch, columns);        // (B, T, C·p·p)
        ops.Linear(columns, Weight, Bias, x);        // (B, T, D)
        ops.AddPositionEmbedding(x, pos);            // (B, T, D)
    }

    /// <summary>The embedder by its checkpoint keys <c>x_embedder.proj.*</c>.</summary>
    internal static PatchEmbedder Load(WeightLoader w, DitConfig c) =>
        // x_embedder.proj is a Conv2d(C, D, kernel=p, stride=p): as a GEMM its weight is (D, C·p·p).
        new(w.Load("x_embedder.proj.weight", c.HiddenSize, c.InChannels * c.PatchSize * c.PatchSize), w.Load("x_embedder.proj.bias"), c.PatchSize);
}

/// <summary>
/// A denoising transformer as a sampling run drives it: the image DiT (<see cref="DitModel"/>) or the video Latte
/// (<see cref="LatteModel"/>). A video model's samples are clips of <see cref="Frames"/> frames, laid out
/// (n, F, C, H, W) = (n·F, C, H, W); an image model has one frame.
/// </summary>
public interface IDiffusionModel : IDisposable
{
    /// <summary>The transformer's shape (for Latte: its DiT-shaped part plus <see cref="DitConfig.Frames"/>).</summary>
    DitConfig Config { get; }

    /// <summary>The backend the model's weights live on.</summary>
    IOps Ops { get; }

    /// <summary>Frames per sample: 1 for an image model.</summary>
    int Frames { get; }

    /// <summary>Allocates one forward's buffers for <paramref name="batch"/> samples (clips) of height × width latents.</summary>
    IForwardPass CreatePass(int batch, int height, int width);

    /// <summary>True once the weights are gone: the model was disposed and no run holds it.</summary>
    bool IsDisposed { get; }

    /// <summary>Bytes of weights the model holds as its own copies (converted or device-resident; CPU float32 weights are
    /// views of the mapped checkpoint and count nothing).</summary>
    long OwnedBytes { get; }

    /// <summary>A lease that keeps the weights alive after <see cref="IDisposable.Dispose"/> until it ends (one per sampling run).</summary>
    internal Lease AcquireLease(string holder);
}

/// <summary>
/// One forward's buffers bound to its model, in the pieces a cached sampling step needs. Latents and outputs are
/// (B·F, C, H, W); t and labels have one entry per sample (B).
/// </summary>
public interface IForwardPass : IDisposable
{
    /// <summary>Patch tokens per frame.</summary>
    int Tokens { get; }

    /// <summary>The residual stream between blocks, (B·F, T, D) frame-major whatever the block kind: what a feature cache stores.</summary>
    Tensor Stream { get; }

    /// <summary>Bytes of device memory the pass holds.</summary>
    long Bytes { get; }

    /// <summary>Conditioning from timesteps t (B) F32 and labels (B) I32.</summary>
    void Condition(Tensor t, Tensor labels);

    /// <summary>Patch tokens of the latent into <see cref="Stream"/>.</summary>
    void EmbedTokens(Tensor latent);

    /// <summary>Runs blocks <c>[from, to)</c> on <see cref="Stream"/> in place.</summary>
    void RunBlocks(int from, int to, IBlockObserver? observer = null);

    /// <summary>The final layer: <see cref="Stream"/> → output (B·F, C', H, W).</summary>
    void Final(Tensor output);
}

/// <summary>
/// A forward pass seen as B batch items (images or clips) for per-item cache decisions (the adaptive executor). An item
/// is R rows of the stream: R = T for an image, F·T for a clip (Latte's stream (B·F, T, D) is frame-major, so a clip's
/// rows are contiguous).
/// </summary>
internal interface IItemPass : IForwardPass
{
    /// <summary>Batch items B (images or clips).</summary>
    int Items { get; }

    /// <summary>The stream viewed item-major (B, R, D).</summary>
    Tensor ItemStream { get; }

    /// <summary>
    /// The per-row conditioning buffers the blocks read, each viewed (B, r·D) (DiT: SiLU(c) (B, D); Latte: the spatial
    /// (B·F, D) and temporal (B·T, D) repeats): they move with an item when items are gathered.
    /// </summary>
    IReadOnlyList<Tensor> ItemConditioning { get; }

    /// <summary>A view of the first <paramref name="items"/> items (same memory); its blocks compute those items only.</summary>
    IItemPass Prefix(int items);

    /// <summary>Block 0's modulated input <c>LN(x)·(1 + scale_msa) + shift_msa</c> of the stream, returned as (B, R, D).</summary>
    Tensor ModulatedInput();
}

/// <summary>Receives the output of each block during a forward (parity dumps, similarity analysis).</summary>
public interface IBlockObserver
{
    /// <param name="x">(B, T, D) on the model's device (Latte: (B·F, T, D), frame-major after every block); valid only during the call.</param>
    void OnBlockOutput(int block, Tensor x);
}

/// <summary>The whole model: patch embedding, conditioning, <see cref="DitConfig.Depth"/> blocks and the final layer.</summary>
/// <remarks>
/// <para>
/// Ownership: the model keeps what its weights live in. On the CPU device its float32 weights are views of the
/// checkpoint's memory-mapped file, and the model holds a lease on that mapping, so the checkpoint may be disposed as
/// soon as the model is loaded. Its other weights are device memory that holds a reference on the device, so disposing
/// the ops or the device first releases nothing the model uses (the CUDA ops' kernel modules are the exception: a model
/// used after its CUDA ops were disposed throws <see cref="ObjectDisposedException"/>). A <see cref="Pipeline.SamplingRun"/>
/// holds a lease on the model: <see cref="Dispose"/> frees the weights once the last run on the model is disposed too;
/// after that every method throws <see cref="ObjectDisposedException"/>. Disposing twice is harmless.
/// </para>
/// <para>
/// Threads: a loaded model is read-only, and several <see cref="Pipeline.SamplingRun"/>s may use it from several
/// threads at once; each run holds the device's <see cref="Device.StepLock"/> around each step (the ops' scratch is
/// shared), so concurrent runs give exactly the bytes they give one after another, and take turns step by step. Calling
/// the forward methods directly from several threads needs that lock too.
/// </para>
/// </remarks>
public sealed class DitModel : IDiffusionModel
{
    private readonly ModelWeights _weights;

    private DitModel(DitConfig config, IOps ops, WeightLoader w)
    {
        Config = config;
        Ops = ops;
        var n = config.Numerics;
        PatchEmbedder = PatchEmbedder.Load(w, config);
        StoredPositionEmbedding = w.TryLoad("pos_embed");
        TimestepEmbedder = new TimestepEmbedder(w.Linear("t_embedder.mlp.0"), w.Linear("t_embedder.mlp.2"), n.FrequencyShift);
        LabelEmbedder = new LabelEmbedder(w.Load("y_embedder.embedding_table.weight"));
        Blocks = Enumerable.Range(0, config.Depth).Select(i => DitBlock.Load(w, i, config.Heads, n)).ToArray();
        FinalLayer = FinalLayer.Load(w, config);
        _weights = new ModelWeights("DitModel", w);
    }

    /// <summary>The architecture the model was built for.</summary>
    public DitConfig Config { get; }
    /// <summary>The ops (and through them the device) every forward runs on.</summary>
    public IOps Ops { get; }
    /// <summary>The patch embedding <c>x_embedder</c> (weight as a GEMM (D, C·p·p), bias (D)).</summary>
    public PatchEmbedder PatchEmbedder { get; }
    /// <summary>The checkpoint's <c>pos_embed</c> (1, T, D) when it stores one; otherwise null and the 2-D sin-cos embedding is computed.</summary>
    public Tensor? StoredPositionEmbedding { get; }
    /// <summary>Timestep embedding: t → (B, D).</summary>
    public TimestepEmbedder TimestepEmbedder { get; }
    /// <summary>Class-label embedding: labels → (B, D).</summary>
    public LabelEmbedder LabelEmbedder { get; }
    /// <summary>The transformer blocks, in order.</summary>
    public IReadOnlyList<DitBlock> Blocks { get; }
    /// <summary>The final adaLN layer and projection to the output channels.</summary>
    public FinalLayer FinalLayer { get; }

    /// <summary>Bytes of weights this model holds as its own copies (0 when every weight is a view of the mapped checkpoint).</summary>
    public long OwnedBytes => _weights.OwnedBytes;

    /// <summary>
    /// Builds the model on <paramref name="ops"/>' device from an opened checkpoint. The checkpoint may be disposed
    /// right after: weights that are views of its mapped file hold a lease on the mapping (see the class remarks).
    /// </summary>
    public static DitModel Load(DitCheckpoint checkpoint, IOps ops)
    {
        if (checkpoint.Config.Frames > 0)
            throw new CheckpointException($"{checkpoint.Path}: a Latte video checkpoint ({checkpoint.Config.Frames} frames, 'temp_embed'); load it as a LatteModel");
        var loader = new WeightLoader(checkpoint, ops);
        try
        {
            return new DitModel(checkpoint.Config, ops, loader);
        }
        catch
        {
            loader.Dispose();
            throw;
        }
    }

    /// <summary>Allocates the activations of one forward for a batch and latent size, reused by every step of a run.</summary>
    public DitActivations CreateActivations(int batch, int height, int width)
    {
        ThrowIfDisposed();
        return new(Ops, Config, StoredPositionEmbedding, batch, height, width);
    }

    /// <summary>An image model: one frame per sample.</summary>
    public int Frames => 1;

    /// <summary><see cref="CreateActivations"/> bound to this model.</summary>
    public IForwardPass CreatePass(int batch, int height, int width) => new Pass(this, CreateActivations(batch, height, width));

    private sealed class Pass(DitModel model, DitActivations a) : IItemPass
    {
        public int Tokens => a.Tokens;
        public Tensor Stream => a.X;
        public long Bytes => a.Bytes;
        public int Items => a.Batch;
        public Tensor ItemStream => a.X;
        public IReadOnlyList<Tensor> ItemConditioning { get; } = [a.SiluC];
        public IItemPass Prefix(int items) => new Pass(model, a.Prefix(items));
        public Tensor ModulatedInput()
        {
            model.Blocks[0].ModulatedInput(model.Ops, a);
            return a.Normed;
        }
        public void Condition(Tensor t, Tensor labels) => model.Condition(t, labels, a);
        public void EmbedTokens(Tensor latent) => model.EmbedTokens(latent, a);
        public void RunBlocks(int from, int to, IBlockObserver? observer = null) => model.RunBlocks(from, to, a, observer);
        public void Final(Tensor output) => model.Final(a, output);
        public void Dispose() => a.Dispose();
    }

    Lease IDiffusionModel.AcquireLease(string holder) => _weights.Acquire(holder);

    /// <summary>True once the weights are gone: the model was disposed and no run holds it.</summary>
    public bool IsDisposed => _weights.IsReleased;

    private void ThrowIfDisposed() => _weights.ThrowIfDisposed();

    /// <summary>Conditioning: <c>c = t_emb(t) + y_emb(y)</c>, and SiLU(c), which every adaLN layer consumes. t: (B) F32, labels: (B) I32.</summary>
    public void Condition(Tensor t, Tensor labels, DitActivations a)
    {
        ThrowIfDisposed();
        TimestepEmbedder.Forward(Ops, t, a, a.TimeEmbedding);  // (B, D)
        LabelEmbedder.Forward(Ops, labels, a.LabelEmbedding);  // (B, D)
        Ops.Add(a.TimeEmbedding, a.LabelEmbedding, a.C);       // (B, D)
        Ops.Silu(a.C, a.SiluC);                                // (B, D)
    }

    /// <summary>Patch tokens: <c>x = PatchEmbed(latent) + pos_embed</c>. latent: (B, C, H, W) → a.X (B, T, D).</summary>
    public void EmbedTokens(Tensor latent, DitActivations a)
    {
        ThrowIfDisposed();
        PatchEmbedder.Forward(Ops, latent, a.Columns, a.PositionEmbedding, a.X);
    }

    /// <summary>Runs blocks <c>[from, to)</c> on a.X in place.</summary>
    public void RunBlocks(int from, int to, DitActivations a, IBlockObserver? observer = null)
    {
        ThrowIfDisposed();
        if (from < 0 || to > Blocks.Count || from > to)
            throw new ArgumentOutOfRangeException(nameof(from), $"blocks [{from}, {to}) of a {Blocks.Count}-block model");
        for (int i = from; i < to; i++)
        {
            Blocks[i].Forward(Ops, a);
            observer?.OnBlockOutput(i, a.X);
        }
    }

    /// <summary>The final layer: a.X → output (B, C', H, W).</summary>
    public void Final(DitActivations a, Tensor output)
    {
        ThrowIfDisposed();
        FinalLayer.Forward(Ops, a, output);
    }

    /// <summary>The full forward: latent (B, C, H, W), t (B), labels (B) → output (B, C', H, W).</summary>
    public void Forward(Tensor latent, Tensor t, Tensor labels, Tensor output, DitActivations a, IBlockObserver? observer = null)
    {
        Condition(t, labels, a);
        EmbedTokens(latent, a);
        RunBlocks(0, Blocks.Count, a, observer);
        Final(a, output);
    }

    /// <summary>
    /// Releases the weights (owned copies and the lease on the mapped file) now, or when the last run holding the model
    /// is disposed. Idempotent.
    /// </summary>
    public void Dispose() => _weights.Dispose();
}

/// <summary>
/// Every intermediate tensor of one forward for a fixed batch and latent size, allocated once and reused by all steps
/// (and, on the CUDA device, one arena's worth of device memory). Also holds the position embedding for this grid.
/// </summary>
public sealed class DitActivations : IDisposable
{
    private readonly List<Tensor> _owned = [];

    internal DitActivations(IOps ops, DitConfig c, Tensor? storedPositionEmbedding, int batch, int height, int width)
    {
        if (batch <= 0)
            throw new ArgumentOutOfRangeException(nameof(batch), "batch must be positive");
        if (height <= 0 || width <= 0 || height % c.PatchSize != 0 || width % c.PatchSize != 0)
            throw new ArgumentException($"latent size {height}×{width} is not a positive multiple of the patch size {c.PatchSize}");
        Batch = batch;
        Height = height;
        Width = width;
        int t = c.Tokens(height, width), d = c.HiddenSize, p = c.PatchSize;
        Tokens = t;
        try
        {
            Allocate(c, storedPositionEmbedding, ops, batch, t, d, p, height, width);
        }
        catch
        {
            Dispose();   // a failed allocation (e.g. out of device memory) must not leak the earlier ones
            throw;
        }
    }

    /// <summary>
    /// A view for Latte's temporal blocks over the token rows of <paramref name="rows"/>: <paramref name="batch"/>
    /// sequences of <paramref name="tokens"/> (B·T sequences of F frames). It owns its residual stream X, the repeated
    /// conditioning SiluC and the Modulation (their row count differs); every other buffer is a reshaped view of
    /// <paramref name="rows"/>' (blocks run one at a time, so they never hold live data across a block).
    /// </summary>
    internal DitActivations(IOps ops, DitActivations rows, int batch, int tokens)
    {
        if ((long)batch * tokens != (long)rows.Batch * rows.Tokens)
            throw new ArgumentException($"a view of {batch}×{tokens} rows over activations of {rows.Batch}×{rows.Tokens} rows");
        Batch = batch;
        Tokens = tokens;
        Height = rows.Height;
        Width = rows.Width;
        int d = rows.X.Dim(2);
        try
        {
            var type = ops.ActivationType;
            X = ops.Device.Allocate(type, batch, tokens, d);
            _owned.Add(X);
            SiluC = ops.Device.Allocate(type, batch, d);
            _owned.Add(SiluC);
            Modulation = ops.Device.Allocate(type, batch, 6 * d);
            _owned.Add(Modulation);
        }
        catch
        {
            Dispose();
            throw;
        }
        Normed = rows.Normed.Reshape(batch, tokens, d);
        Qkv = rows.Qkv.Reshape(batch, tokens, 3 * d);
        Attended = rows.Attended.Reshape(batch, tokens, d);
        Residual = rows.Residual.Reshape(batch, tokens, d);
        Hidden = rows.Hidden.Reshape(batch, tokens, rows.Hidden.Dim(2));
        (Frequencies, TimeHidden, TimeEmbedding, LabelEmbedding, C) = (rows.Frequencies, rows.TimeHidden, rows.TimeEmbedding, rows.LabelEmbedding, rows.C);
        (FinalModulation, Columns, Patches, PositionEmbedding) = (rows.FinalModulation, rows.Columns, rows.Patches, rows.PositionEmbedding);
    }

    private void Allocate(DitConfig c, Tensor? stored, IOps ops, int batch, int t, int d, int p, int height, int width)
    {
        var type = ops.ActivationType;
        Tensor New(params int[] shape)
        {
            var tensor = ops.Device.Allocate(type, shape);
            _owned.Add(tensor);
            return tensor;
        }
        Frequencies = New(batch, c.FrequencyEmbeddingSize);
        TimeHidden = New(batch, d);
        TimeEmbedding = New(batch, d);
        LabelEmbedding = New(batch, d);
        C = New(batch, d);
        SiluC = New(batch, d);
        Modulation = New(batch, 6 * d);
        FinalModulation = New(batch, 2 * d);
        Columns = New(batch, t, c.InChannels * p * p);
        X = New(batch, t, d);
        Normed = New(batch, t, d);
        Qkv = New(batch, t, 3 * d);
        Attended = New(batch, t, d);
        Residual = New(batch, t, d);
        Hidden = New(batch, t, c.MlpHidden);
        Patches = New(batch, t, p * p * c.OutChannels);
        int gh = height / p, gw = width / p;
        if (stored is not null && stored.Count == (long)t * d && gh == gw && gh * p == c.InputSize)
            PositionEmbedding = stored.Reshape(t, d);
        else
            PositionEmbedding = ops.Device.FromFloats(Dit.PositionEmbedding.SinCos2D(d, gh, gw, c.PositionBaseSize, c.PositionInterpolationScale), type, t, d);
        if (PositionEmbedding.OwnsMemory)
            _owned.Add(PositionEmbedding);
    }

    /// <summary>
    /// A view of the first <paramref name="items"/> batch items of every buffer of <paramref name="parent"/> (same memory,
    /// nothing allocated on the device): a forward on it computes those items only. The sampling run gathers the images
    /// that compute a step into the first items when the others reuse (per-image cache decisions).
    /// </summary>
    private DitActivations(DitActivations parent, int items, DitActivations? shared = null)
    {
        Batch = items;
        Height = parent.Height;
        Width = parent.Width;
        Tokens = parent.Tokens;
        if (shared is not null)   // a temporal view's prefix: the buffers it borrows come from the spatial prefix
        {
            (Frequencies, TimeHidden, TimeEmbedding, LabelEmbedding, C) = (shared.Frequencies, shared.TimeHidden, shared.TimeEmbedding, shared.LabelEmbedding, shared.C);
            (FinalModulation, Columns, Patches) = (shared.FinalModulation, shared.Columns, shared.Patches);
        }
        else
        {
            Frequencies = parent.Frequencies.Slice(0, items);
            TimeHidden = parent.TimeHidden.Slice(0, items);
            TimeEmbedding = parent.TimeEmbedding.Slice(0, items);
            LabelEmbedding = parent.LabelEmbedding.Slice(0, items);
            C = parent.C.Slice(0, items);
            FinalModulation = parent.FinalModulation.Slice(0, items);
            Columns = parent.Columns.Slice(0, items);
            Patches = parent.Patches.Slice(0, items);
        }
        SiluC = parent.SiluC.Slice(0, items);
        Modulation = parent.Modulation.Slice(0, items);
        X = parent.X.Slice(0, items);
        Normed = parent.Normed.Slice(0, items);
        Qkv = parent.Qkv.Slice(0, items);
        Attended = parent.Attended.Slice(0, items);
        Residual = parent.Residual.Slice(0, items);
        Hidden = parent.Hidden.Slice(0, items);
        PositionEmbedding = parent.PositionEmbedding;
    }

    /// <summary>The first <paramref name="items"/> batch items of this arena, as a view (see the private constructor).</summary>
    public DitActivations Prefix(int items) =>
        items >= 1 && items <= Batch ? new DitActivations(this, items)
            : throw new ArgumentOutOfRangeException(nameof(items), $"a prefix of {items} items of a batch of {Batch}");

    /// <summary>
    /// The first <paramref name="items"/> sequences of a temporal view (Latte: B·T sequences of F frames) whose rows
    /// activations are <paramref name="spatialPrefix"/>, the matching prefix of the spatial rows: its own buffers and
    /// the reshaped scratch are sliced, the buffers the blocks do not use are the spatial prefix's.
    /// </summary>
    internal DitActivations TemporalPrefix(int items, DitActivations spatialPrefix) =>
        items >= 1 && items <= Batch && (long)items * Tokens == (long)spatialPrefix.Batch * spatialPrefix.Tokens
            ? new DitActivations(this, items, spatialPrefix)
            : throw new ArgumentOutOfRangeException(nameof(items), $"a temporal prefix of {items}×{Tokens} rows over a spatial prefix of {spatialPrefix.Batch}×{spatialPrefix.Tokens}");

    /// <summary>Batch size B the tensors were allocated for.</summary>
    public int Batch { get; }
    /// <summary>Latent height H.</summary>
    public int Height { get; }
    /// <summary>Latent width W.</summary>
    public int Width { get; }
    /// <summary>Tokens per image T = (H/p)·(W/p).</summary>
    public int Tokens { get; }

    /// <summary>Sinusoidal timestep features (B, 256).</summary>
    public Tensor Frequencies { get; private set; } = null!;     // (B, 256)
    /// <summary>Hidden layer of the timestep MLP (B, D).</summary>
    public Tensor TimeHidden { get; private set; } = null!;      // (B, D)
    /// <summary>Timestep embedding (B, D).</summary>
    public Tensor TimeEmbedding { get; private set; } = null!;   // (B, D)
    /// <summary>Label embedding (B, D).</summary>
    public Tensor LabelEmbedding { get; private set; } = null!;  // (B, D)
    /// <summary>Conditioning c = timestep embedding + label embedding (B, D).</summary>
    public Tensor C { get; private set; } = null!;               // (B, D)
    /// <summary>SiLU(c) (B, D), the input of every adaLN layer.</summary>
    public Tensor SiluC { get; private set; } = null!;           // (B, D)
    /// <summary>A block's modulation vector (B, 6D): shift, scale and gate for the attention and the MLP.</summary>
    public Tensor Modulation { get; private set; } = null!;      // (B, 6D)
    /// <summary>The final layer's modulation (B, 2D): shift and scale.</summary>
    public Tensor FinalModulation { get; private set; } = null!; // (B, 2D)
    /// <summary>Patchified input (B, T, C·p·p).</summary>
    public Tensor Columns { get; private set; } = null!;         // (B, T, C·p·p)
    /// <summary>The residual stream (B, T, D), updated in place by the blocks.</summary>
    public Tensor X { get; private set; } = null!;               // (B, T, D): the residual stream
    /// <summary>LayerNorm-ed and modulated tokens (B, T, D).</summary>
    public Tensor Normed { get; private set; } = null!;          // (B, T, D)
    /// <summary>Query, key and value (B, T, 3D).</summary>
    public Tensor Qkv { get; private set; } = null!;             // (B, T, 3D)
    /// <summary>Attention output before the projection (B, T, D).</summary>
    public Tensor Attended { get; private set; } = null!;        // (B, T, D)
    /// <summary>The branch output added to the residual stream (B, T, D).</summary>
    public Tensor Residual { get; private set; } = null!;        // (B, T, D)
    /// <summary>MLP hidden layer (B, T, MLP hidden size).</summary>
    public Tensor Hidden { get; private set; } = null!;          // (B, T, 4D)
    /// <summary>Output patches of the final layer (B, T, p·p·C').</summary>
    public Tensor Patches { get; private set; } = null!;         // (B, T, p·p·C')
    /// <summary>Position embedding for this grid (T, D): a view of the checkpoint's or computed sin-cos values.</summary>
    public Tensor PositionEmbedding { get; private set; } = null!; // (T, D)

    /// <summary>Bytes of device memory this arena holds.</summary>
    public long Bytes => _owned.Sum(t => t.ByteCount);

    /// <summary>Frees every tensor of the arena. Disposing twice is harmless.</summary>
    public void Dispose()
    {
        foreach (var t in _owned)
            t.Dispose();
        _owned.Clear();
    }
}

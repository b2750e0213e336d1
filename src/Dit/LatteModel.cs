// Latte (Ma et al., "Latte: Latent Diffusion Transformer for Video Generation", 2024), the class-conditional model of
// its UCF101 configuration, written to follow https://github.com/Vchitect/Latte/blob/b27c24a/models/latte.py (class Latte,
// extras = 2). Its pieces are DiT's (blocks, embedders, final layer; DitModel.cs) under the same checkpoint keys, plus a
// fixed 1-D sin-cos temporal embedding `temp_embed` [1, F, D]. The blocks alternate: even indices are spatial (attention
// over the T patch tokens of one frame, rows (B·F, T, D)), odd indices temporal (attention over the F frames of one patch
// position, rows (B·T, F, D)). Between them the tokens are rearranged with IOps.SwapFrameTokenAxes.
// Shapes: B clips, F frames, T tokens per frame, D hidden, C in channels, C' out channels (2C with learned sigma).
using BlockDance.Kernels;
using BlockDance.Runtime;

namespace BlockDance.Dit;

/// <summary>The Latte video transformer: per-frame patch embedding, conditioning, alternating spatial/temporal blocks, the final layer.</summary>
/// <remarks>Ownership and threads as for <see cref="DitModel"/>: the model holds a lease on the mapped checkpoint, a
/// <see cref="Pipeline.SamplingRun"/> holds a lease on the model, and after the last of them is disposed every method
/// throws <see cref="ObjectDisposedException"/>.</remarks>
public sealed class LatteModel : IDiffusionModel
{
    private readonly ModelWeights _weights;

    private LatteModel(DitConfig config, IOps ops, WeightLoader w)
    {
        Config = config;
        Ops = ops;
        PatchEmbedder = PatchEmbedder.Load(w, config);
        StoredPositionEmbedding = w.TryLoad("pos_embed");
        TemporalEmbedding = w.Load("temp_embed", config.Frames, config.HiddenSize);
        TimestepEmbedder = new TimestepEmbedder(w.Linear("t_embedder.mlp.0"), w.Linear("t_embedder.mlp.2"), config.Numerics.FrequencyShift);
        LabelEmbedder = new LabelEmbedder(w.Load("y_embedder.embedding_table.weight"));
        Blocks = Enumerable.Range(0, config.Depth).Select(i => DitBlock.Load(w, i, config.Heads, config.Numerics)).ToArray();
        FinalLayer = FinalLayer.Load(w, config);
        _weights = new ModelWeights("LatteModel", w);
    }

    /// <summary>The shape; <see cref="DitConfig.Frames"/> is the clip length (the rows of <c>temp_embed</c>).</summary>
    public DitConfig Config { get; }

    /// <summary>The backend the weights live on.</summary>
    public IOps Ops { get; }

    /// <summary>Frames per clip.</summary>
    public int Frames => Config.Frames;

    /// <summary><c>x_embedder</c>, applied to every frame ("uniform frame patch embedding", no tubelets).</summary>
    public PatchEmbedder PatchEmbedder { get; }

    /// <summary><c>pos_embed</c> (1, T, D) when the checkpoint has it (recomputed otherwise, as DiT does).</summary>
    public Tensor? StoredPositionEmbedding { get; }

    /// <summary><c>temp_embed</c> viewed as (F, D): added once, to the rows (B·T, F, D) before the first temporal block.</summary>
    public Tensor TemporalEmbedding { get; }

    /// <summary><c>t_embedder</c>.</summary>
    public TimestepEmbedder TimestepEmbedder { get; }

    /// <summary><c>y_embedder</c>; row <c>num_classes</c> is the null class.</summary>
    public LabelEmbedder LabelEmbedder { get; }

    /// <summary><c>blocks</c>: even indices spatial, odd indices temporal (<see cref="IsTemporal"/>).</summary>
    public IReadOnlyList<DitBlock> Blocks { get; }

    /// <summary><c>final_layer</c>, conditioned on the per-frame conditioning.</summary>
    public FinalLayer FinalLayer { get; }

    /// <summary>Bytes of weights this model holds as its own copies.</summary>
    public long OwnedBytes => _weights.OwnedBytes;

    /// <summary><c>for i in range(0, depth, 2): spatial_block, temp_block = blocks[i:i+2]</c>.</summary>
    public static bool IsTemporal(int block) => block % 2 == 1;

    /// <summary>Builds the model from an opened Latte checkpoint (one with <c>temp_embed</c>); the checkpoint may be disposed right after.</summary>
    public static LatteModel Load(DitCheckpoint checkpoint, IOps ops)
    {
        if (checkpoint.Config.Frames <= 0)
            throw new CheckpointException($"{checkpoint.Path}: not a Latte checkpoint (no 'temp_embed'); load it as a DitModel");
        var loader = new WeightLoader(checkpoint, ops);
        try
        {
            return new LatteModel(checkpoint.Config, ops, loader);
        }
        catch
        {
            loader.Dispose();
            throw;
        }
    }

    /// <summary>Allocates one forward's activations for <paramref name="batch"/> clips of height × width latent frames.</summary>
    public LatteActivations CreateActivations(int batch, int height, int width)
    {
        ThrowIfDisposed();
        return new(this, batch, height, width);
    }

    /// <summary><see cref="CreateActivations"/> as the sampling run sees it.</summary>
    public IForwardPass CreatePass(int batch, int height, int width) => CreateActivations(batch, height, width);

    Lease IDiffusionModel.AcquireLease(string holder) => _weights.Acquire(holder);

    /// <summary>True once the weights are gone: the model was disposed and no run holds it.</summary>
    public bool IsDisposed => _weights.IsReleased;

    private void ThrowIfDisposed() => _weights.ThrowIfDisposed();

    /// <summary>
    /// <c>c = t_embedder(t) + y_embedder(y)</c> per clip, then repeated as the blocks consume it:
    /// <c>repeat(c, 'n d -> (n f) d')</c> for spatial blocks and the final layer, <c>repeat(c, 'n d -> (n t) d')</c>
    /// for temporal blocks (SiLU, the first layer of every adaLN, is applied before repeating: it is per row).
    /// t: (B) F32, labels: (B) I32.
    /// </summary>
    public void Condition(Tensor t, Tensor labels, LatteActivations a)
    {
        ThrowIfDisposed();
        TimestepEmbedder.Forward(Ops, t, a.Frequencies, a.TimeHidden, a.TimeEmbedding);  // (B, D)
        LabelEmbedder.Forward(Ops, labels, a.LabelEmbedding);                            // (B, D)
        Ops.Add(a.TimeEmbedding, a.LabelEmbedding, a.C);                                 // (B, D)
        Ops.Silu(a.C, a.SiluC);                                                          // (B, D)
        Ops.EmbeddingLookup(a.SiluC, a.SpatialRows, a.Spatial.SiluC);                   // (B·F, D)
        Ops.EmbeddingLookup(a.SiluC, a.TemporalRows, a.Temporal.SiluC);                 // (B·T, D)
    }

    /// <summary>
    /// <c>rearrange(x, 'b f c h w -> (b f) c h w')</c>, then <c>x_embedder(x) + pos_embed</c> per frame. latent:
    /// (B·F, C, H, W), or (B, F, C, H, W) (viewed once more, which allocates a view object) → a.Spatial.X (B·F, T, D).
    /// </summary>
    public void EmbedTokens(Tensor latent, LatteActivations a)
    {
        ThrowIfDisposed();
        var s = a.Spatial;
        var frames = latent.Rank == 5 ? latent.Reshape(a.Rows, latent.Dim(2), latent.Dim(3), latent.Dim(4)) : latent;
        PatchEmbedder.Forward(Ops, frames, s.Columns, s.PositionEmbedding, s.X);
    }

    /// <summary>
    /// Runs blocks <c>[from, to)</c>. The stream between blocks is always frame-major (B·F, T, D) in a.Spatial.X, and
    /// that is what the observer sees after every block, spatial or temporal. A temporal block rearranges
    /// <c>'(b f) t d -> (b t) f d'</c>, adds <c>temp_embed</c> if it is block 1 (the official loop's <c>i == 0</c>),
    /// runs on (B·T, F, D) and rearranges back <c>'(b t) f d -> (b f) t d'</c>.
    /// </summary>
    public void RunBlocks(int from, int to, LatteActivations a, IBlockObserver? observer = null)
    {
        ThrowIfDisposed();
        if (from < 0 || to > Blocks.Count || from > to)
            throw new ArgumentOutOfRangeException(nameof(from), $"blocks [{from}, {to}) of a {Blocks.Count}-block model");
        for (int i = from; i < to; i++)
        {
            if (!IsTemporal(i))
            {
                Blocks[i].Forward(Ops, a.Spatial);                              // attention over the T tokens of a frame
            }
            else
            {
                Ops.SwapFrameTokenAxes(a.SpatialFrames, a.TemporalFrames);      // (B, F, T, D) → (B, T, F, D)
                if (i == 1)
                    Ops.AddPositionEmbedding(a.Temporal.X, TemporalEmbedding);  // x += temp_embed (F, D), once
                Blocks[i].Forward(Ops, a.Temporal);                             // attention over the F frames of a position
                Ops.SwapFrameTokenAxes(a.TemporalFrames, a.SpatialFrames);      // (B, T, F, D) → (B, F, T, D)
            }
            observer?.OnBlockOutput(i, a.Spatial.X);
        }
    }

    /// <summary>
    /// The final layer on the per-frame conditioning, unpatchify per frame, <c>'(b f) c h w -> b f c h w'</c>.
    /// output: (B·F, C', H, W) or (B, F, C', H, W).
    /// </summary>
    public void Final(LatteActivations a, Tensor output)
    {
        ThrowIfDisposed();
        var frames = output.Rank == 5 ? output.Reshape(a.Rows, output.Dim(2), output.Dim(3), output.Dim(4)) : output;
        FinalLayer.Forward(Ops, a.Spatial, frames);
    }

    /// <summary>The full forward: latent (B, F, C, H, W), t (B), labels (B) → output (B, F, C', H, W).</summary>
    public void Forward(Tensor latent, Tensor t, Tensor labels, Tensor output, LatteActivations a, IBlockObserver? observer = null)
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
/// Every intermediate tensor of one Latte forward for a fixed batch of clips and frame size, allocated once. The spatial
/// activations hold the frame-major rows (B·F, T, D); the temporal ones own only their stream, conditioning and
/// modulation and view the rest of the spatial buffers as (B·T, F, ·).
/// </summary>
public sealed class LatteActivations : IForwardPass, IItemPass
{
    private readonly LatteModel _model;
    private readonly List<Tensor> _owned = [];

    internal LatteActivations(LatteModel model, int batch, int height, int width)
    {
        var c = model.Config;
        if (batch <= 0)
            throw new ArgumentOutOfRangeException(nameof(batch), "batch must be positive");
        _model = model;
        Batch = batch;
        Frames = c.Frames;
        Rows = batch * c.Frames;
        var ops = model.Ops;
        try
        {
            Spatial = new DitActivations(ops, c, model.StoredPositionEmbedding, Rows, height, width);
            Tokens = Spatial.Tokens;
            Temporal = new DitActivations(ops, Spatial, batch * Tokens, c.Frames);
            int d = c.HiddenSize;
            SpatialFrames = Spatial.X.Reshape(batch, c.Frames, Tokens, d);
            TemporalFrames = Temporal.X.Reshape(batch, Tokens, c.Frames, d);
            Tensor New(params int[] shape)
            {
                var tensor = ops.Device.Allocate(ops.ActivationType, shape);
                _owned.Add(tensor);
                return tensor;
            }
            Frequencies = New(batch, c.FrequencyEmbeddingSize);
            TimeHidden = New(batch, d);
            TimeEmbedding = New(batch, d);
            LabelEmbedding = New(batch, d);
            C = New(batch, d);
            SiluC = New(batch, d);
            SpatialRows = RepeatIds(ops, batch, c.Frames);
            TemporalRows = RepeatIds(ops, batch, Tokens);
            (ItemStream, ModulatedItems, ItemConditioning) = ItemViews();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>
    /// A view of the first <paramref name="clips"/> clips of <paramref name="parent"/> (same memory, nothing allocated on
    /// the device): the spatial rows are the first m·F frame rows and the temporal rows the first m·T token rows (both
    /// streams are clip-major, so each prefix is contiguous; the temporal views of the spatial scratch slice the same
    /// first m·F·T rows). Blocks run on it compute those clips only.
    /// </summary>
    private LatteActivations(LatteActivations parent, int clips)
    {
        _model = parent._model;
        Batch = clips;
        Frames = parent.Frames;
        Rows = clips * Frames;
        Tokens = parent.Tokens;
        Spatial = parent.Spatial.Prefix(Rows);
        Temporal = parent.Temporal.TemporalPrefix(clips * Tokens, Spatial);
        int d = Spatial.X.Dim(2);
        SpatialFrames = Spatial.X.Reshape(clips, Frames, Tokens, d);
        TemporalFrames = Temporal.X.Reshape(clips, Tokens, Frames, d);
        Frequencies = parent.Frequencies.Slice(0, clips);
        TimeHidden = parent.TimeHidden.Slice(0, clips);
        TimeEmbedding = parent.TimeEmbedding.Slice(0, clips);
        LabelEmbedding = parent.LabelEmbedding.Slice(0, clips);
        C = parent.C.Slice(0, clips);
        SiluC = parent.SiluC.Slice(0, clips);
        SpatialRows = parent.SpatialRows.Slice(0, Rows);
        TemporalRows = parent.TemporalRows.Slice(0, clips * Tokens);
        (ItemStream, ModulatedItems, ItemConditioning) = ItemViews();
    }

    private (Tensor, Tensor, Tensor[]) ItemViews()
    {
        int d = Spatial.X.Dim(2);
        return (Spatial.X.Reshape(Batch, Frames * Tokens, d), Spatial.Normed.Reshape(Batch, Frames * Tokens, d),
            [Spatial.SiluC.Reshape(Batch, Frames * d), Temporal.SiluC.Reshape(Batch, Tokens * d)]);
    }

    // ids [n·r + k] = n: EmbeddingLookup with them is einops repeat('n d -> (n r) d').
    private Tensor RepeatIds(IOps ops, int batch, int repeat)
    {
        var ids = new int[batch * repeat];
        for (int i = 0; i < ids.Length; i++)
            ids[i] = i / repeat;
        var tensor = ops.Device.FromHost<int>(ids, DType.I32, ids.Length);
        _owned.Add(tensor);
        return tensor;
    }

    /// <summary>Clips.</summary>
    public int Batch { get; }

    /// <summary>Frames per clip.</summary>
    public int Frames { get; }

    /// <summary>Frame rows: B·F.</summary>
    public int Rows { get; }

    /// <summary>Patch tokens per frame.</summary>
    public int Tokens { get; }

    /// <summary>Rows (B·F, T, D) for spatial blocks, the patch embedding and the final layer; SiluC is (B·F, D).</summary>
    public DitActivations Spatial { get; } = null!;

    /// <summary>Rows (B·T, F, D) for temporal blocks; SiluC is (B·T, D).</summary>
    public DitActivations Temporal { get; } = null!;

    /// <summary>Spatial.X viewed as (B, F, T, D).</summary>
    public Tensor SpatialFrames { get; } = null!;

    /// <summary>Temporal.X viewed as (B, T, F, D).</summary>
    public Tensor TemporalFrames { get; } = null!;

    /// <summary>Timestep features (B, 256).</summary>
    public Tensor Frequencies { get; } = null!;

    /// <summary>Timestep MLP hidden layer (B, D).</summary>
    public Tensor TimeHidden { get; } = null!;

    /// <summary><c>t_embedder(t)</c> (B, D).</summary>
    public Tensor TimeEmbedding { get; } = null!;

    /// <summary><c>y_embedder(y)</c> (B, D).</summary>
    public Tensor LabelEmbedding { get; } = null!;

    /// <summary><c>c = t + y</c> per clip (B, D).</summary>
    public Tensor C { get; } = null!;

    /// <summary>SiLU(c) per clip (B, D), before repetition.</summary>
    public Tensor SiluC { get; } = null!;

    /// <summary>I32 (B·F): row n·F + f → clip n.</summary>
    public Tensor SpatialRows { get; } = null!;

    /// <summary>I32 (B·T): row n·T + t → clip n.</summary>
    public Tensor TemporalRows { get; } = null!;

    /// <summary>The frame-major stream (B·F, T, D).</summary>
    public Tensor Stream => Spatial.X;

    int IItemPass.Items => Batch;

    /// <summary>The stream viewed clip-major (B, F·T, D): a clip's rows are contiguous.</summary>
    internal Tensor ItemStream { get; } = null!;

    Tensor IItemPass.ItemStream => ItemStream;

    // Spatial.Normed viewed (B, F·T, D): block 0 (spatial)'s modulated input per clip.
    private Tensor ModulatedItems { get; } = null!;

    /// <summary>Spatial.SiluC (B·F, D) and Temporal.SiluC (B·T, D) viewed (B, F·D) and (B, T·D).</summary>
    internal IReadOnlyList<Tensor> ItemConditioning { get; } = [];

    IReadOnlyList<Tensor> IItemPass.ItemConditioning => ItemConditioning;

    /// <summary>The first <paramref name="clips"/> clips, as a view (see the private constructor).</summary>
    internal LatteActivations Prefix(int clips) =>
        clips >= 1 && clips <= Batch ? new LatteActivations(this, clips)
            : throw new ArgumentOutOfRangeException(nameof(clips), $"a prefix of {clips} clips of a batch of {Batch}");

    IItemPass IItemPass.Prefix(int items) => Prefix(items);

    Tensor IItemPass.ModulatedInput()
    {
        _model.Blocks[0].ModulatedInput(_model.Ops, Spatial);   // block 0 is spatial
        return ModulatedItems;
    }

    /// <summary>Bytes of device memory the activations hold.</summary>
    public long Bytes => _owned.Sum(t => t.ByteCount) + (Spatial?.Bytes ?? 0) + (Temporal?.Bytes ?? 0);

    /// <inheritdoc/>
    public void Condition(Tensor t, Tensor labels) => _model.Condition(t, labels, this);

    /// <inheritdoc/>
    public void EmbedTokens(Tensor latent) => _model.EmbedTokens(latent, this);

    /// <inheritdoc/>
    public void RunBlocks(int from, int to, IBlockObserver? observer = null) => _model.RunBlocks(from, to, this, observer);

    /// <inheritdoc/>
    public void Final(Tensor output) => _model.Final(this, output);

    /// <summary>Frees every buffer.</summary>
    public void Dispose()
    {
        Temporal?.Dispose();
        Spatial?.Dispose();
        foreach (var t in _owned)
            t.Dispose();
        _owned.Clear();
    }
}

namespace BlockDance.Dit;

/// <summary>
/// Multiply-accumulates of a DiT forward, counted analytically from the shapes (the DiT paper's "Gflops" count
/// multiply-adds: DiT-XL/2 at 256×256 is 118.6 G per image). Elementwise work (norms, softmax, activations) is not
/// counted, as in the paper.
/// </summary>
public readonly record struct MacCount(DitConfig Config, int Tokens)
{
    private long D => Config.HiddenSize;
    private long T => Tokens;

    /// <summary>Patch embedding: the Conv2d as a GEMM (T × C·p² × D).</summary>
    public long PatchEmbed => T * Config.InChannels * Config.PatchSize * Config.PatchSize * D;

    /// <summary>Timestep MLP (256 → D → D); the label embedding is a lookup.</summary>
    public long Conditioning => Config.FrequencyEmbeddingSize * D + D * D;

    /// <summary>One block: adaLN (D × 6D), qkv (T·D·3D), QKᵀ and AV (2·T²·D over all heads), proj (T·D²), MLP (8·T·D²).</summary>
    public long Block => BlockOf(T);

    private long BlockOf(long n) => 6 * D * D + 3 * n * D * D + 2 * n * n * D + n * D * D + 2 * n * D * Config.MlpHidden;

    /// <summary>Frames per sample (1 for an image model; a Latte clip has <see cref="DitConfig.Frames"/>).</summary>
    private long F => Math.Max(Config.Frames, 1);

    /// <summary>
    /// Block <paramref name="i"/> for one sample: <see cref="Block"/> for an image DiT; for Latte a spatial block (even
    /// i) is F blocks over T tokens, a temporal block (odd i) T blocks over F frames (adaLN runs on each row's copy of
    /// the conditioning, as in the official code).
    /// </summary>
    public long BlockAt(int i) => Config.Frames > 0 && i % 2 == 1 ? T * BlockOf(F) : F * Block;

    /// <summary>Final layer: adaLN (D × 2D) and the linear to p²·C' per token (per frame for a video).</summary>
    public long FinalLayer => F * (2 * D * D + T * D * Config.PatchSize * Config.PatchSize * Config.OutChannels);

    /// <summary>A full forward for one sample (image or clip).</summary>
    public long Forward => F * PatchEmbed + Conditioning + Blocks(0) + FinalLayer;

    /// <summary>A reuse step for one sample: no patch embedding and the blocks before <paramref name="boundary"/> skipped.</summary>
    public long ReuseForward(int boundary) => Conditioning + Blocks(boundary) + FinalLayer;

    /// <summary>
    /// A skip step of an adaptive policy for one sample: the conditioning and the final layer, plus, when it adds a
    /// stored residual (TeaCache, First-Block-Cache), the patch embedding of every frame and blocks
    /// <c>0 … skipFrom−1</c>.
    /// </summary>
    public long SkipForward(int skipFrom, bool addsResidual) =>
        Conditioning + FinalLayer + (addsResidual ? F * PatchEmbed + Blocks(0, skipFrom) : 0);

    private long Blocks(int from) => Blocks(from, Config.Depth);

    private long Blocks(int from, int to)
    {
        long sum = 0;
        for (int i = from; i < to; i++)
            sum += BlockAt(i);
        return sum;
    }
}

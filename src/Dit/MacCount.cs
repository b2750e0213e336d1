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
    public long Block => 6 * D * D + 3 * T * D * D + 2 * T * T * D + T * D * D + 2 * T * D * Config.MlpHidden;

    /// <summary>Final layer: adaLN (D × 2D) and the linear to p²·C' per token.</summary>
    public long FinalLayer => 2 * D * D + T * D * Config.PatchSize * Config.PatchSize * Config.OutChannels;

    /// <summary>A full forward for one image.</summary>
    public long Forward => PatchEmbed + Conditioning + Config.Depth * Block + FinalLayer;

    /// <summary>A reuse step for one image: no patch embedding and <paramref name="boundary"/> fewer blocks.</summary>
    public long ReuseForward(int boundary) => Conditioning + (Config.Depth - boundary) * Block + FinalLayer;
}

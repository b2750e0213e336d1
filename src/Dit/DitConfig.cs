namespace BlockDance.Dit;

/// <summary>Which reference implementation a checkpoint comes from: decides the key names and the numerics.</summary>
public enum DitLayout
{
    /// <summary>facebookresearch/DiT <c>models.py</c>: keys <c>blocks.{i}.attn.qkv.*</c>.</summary>
    Original,

    /// <summary>diffusers <c>DiTTransformer2DModel</c>: keys <c>transformer_blocks.{i}.attn1.to_q.*</c>.</summary>
    Diffusers,
}

/// <summary>
/// The numbers where the two reference implementations of the same DiT disagree (model-spec §2.2), kept apart from the
/// architecture so a checkpoint in either layout can be run with either numerics when a user asks for it.
/// </summary>
/// <param name="FrequencyShift">Timestep sinusoid divisor is <c>half − shift</c>: original 0 (÷128), diffusers 1 (÷127).</param>
/// <param name="AttentionNormEps">LayerNorm eps before attention (both 1e-6).</param>
/// <param name="MlpNormEps">LayerNorm eps before the MLP: original 1e-6, diffusers <c>norm3</c> 1e-5.</param>
/// <param name="FinalNormEps">LayerNorm eps of the final layer (both 1e-6).</param>
/// <param name="GuidedChannels">Output channels classifier-free guidance is applied to: original 3 (sic, "for exact reproducibility"), diffusers 4.</param>
public sealed record DitNumerics(int FrequencyShift, float AttentionNormEps, float MlpNormEps, float FinalNormEps, int GuidedChannels)
{
    /// <summary>https://github.com/facebookresearch/DiT/blob/ed81ce2229091fd4ecc9a223645f95cf379d582b/models.py</summary>
    public static DitNumerics Original { get; } = new(0, 1e-6f, 1e-6f, 1e-6f, 3);

    /// <summary>https://github.com/huggingface/diffusers/blob/58eb52c0/src/diffusers/models/transformers/dit_transformer_2d.py</summary>
    public static DitNumerics Diffusers { get; } = new(1, 1e-6f, 1e-5f, 1e-6f, 4);

    /// <summary>The numerics of a checkpoint layout: <see cref="Original"/> or <see cref="Diffusers"/>.</summary>
    public static DitNumerics For(DitLayout layout) => layout == DitLayout.Original ? Original : Diffusers;
}

/// <summary>
/// A DiT's shape. <see cref="InputSize"/> is the latent side length the checkpoint was trained for (its stored position
/// embedding); the model runs at any latent size divisible by the patch size.
/// </summary>
public sealed record DitConfig
{
    /// <summary>Number of transformer blocks.</summary>
    public required int Depth { get; init; }
    /// <summary>Width D of the token vectors.</summary>
    public required int HiddenSize { get; init; }
    /// <summary>Attention heads per block (D must be divisible by it).</summary>
    public required int Heads { get; init; }
    /// <summary>Side p of the square patches that become tokens.</summary>
    public required int PatchSize { get; init; }
    /// <summary>Channels C of the input latent (4 for a Stable Diffusion VAE latent, 3 for a pixel-space model).</summary>
    public int InChannels { get; init; } = 4;
    /// <summary>True when the model also predicts the variance: the output then has 2C channels.</summary>
    public bool LearnSigma { get; init; } = true;
    /// <summary>Number of classes, without the null class of classifier-free guidance.</summary>
    public int NumClasses { get; init; } = 1000;
    /// <summary>Latent side length the checkpoint was trained for.</summary>
    public int InputSize { get; init; } = 32;
    /// <summary>MLP hidden width as a multiple of D.</summary>
    public int MlpRatio { get; init; } = 4;

    /// <summary>Frames of a Latte video model (its <c>temp_embed</c> rows); 0 for an image DiT.</summary>
    public int Frames { get; init; }

    /// <summary>Width of the sinusoidal timestep features (DiT: 256).</summary>
    public int FrequencyEmbeddingSize { get; init; } = 256;

    /// <summary>The numbers where the reference implementations differ (defaults to the original DiT's).</summary>
    public DitNumerics Numerics { get; init; } = DitNumerics.Original;

    /// <summary>
    /// The layout's rule for the position embedding at a grid other than the native one: null for the original DiT
    /// (integer coordinates), <c>InputSize / PatchSize</c> for diffusers' <c>PatchEmbed</c> (coordinates rescaled to
    /// the native grid); see <see cref="PositionEmbedding.SinCos2D"/>.
    /// </summary>
    public int? PositionBaseSize { get; init; }

    /// <summary>diffusers' <c>interpolation_scale</c>: <c>max(sample_size // 64, 1)</c>.</summary>
    public int PositionInterpolationScale { get; init; } = 1;

    /// <summary>Output channels C': 2C with a learned variance, else C.</summary>
    public int OutChannels => LearnSigma ? 2 * InChannels : InChannels;
    /// <summary>Width of one attention head, D / heads.</summary>
    public int HeadDim => HiddenSize / Heads;
    /// <summary>Width of the MLP hidden layer, D × <see cref="MlpRatio"/>.</summary>
    public int MlpHidden => HiddenSize * MlpRatio;

    /// <summary>Row of the label table used as the unconditional ("null") class: <c>num_classes</c>.</summary>
    public int NullClass => NumClasses;

    /// <summary>Tokens for a latent of <paramref name="height"/> × <paramref name="width"/>.</summary>
    public int Tokens(int height, int width) => height / PatchSize * (width / PatchSize);

    /// <summary>Throws with a clear message when the numbers cannot describe a DiT.</summary>
    public DitConfig Validate()
    {
        if (Depth <= 0 || HiddenSize <= 0 || Heads <= 0 || PatchSize <= 0 || InChannels <= 0 || NumClasses <= 0 || InputSize <= 0)
            throw new ArgumentException($"invalid DiT configuration: {this}");
        if (HiddenSize % Heads != 0)
            throw new ArgumentException($"hidden size {HiddenSize} is not divisible by {Heads} heads");
        if (HiddenSize % 4 != 0)
            throw new ArgumentException($"hidden size {HiddenSize} must be divisible by 4 for the 2-D sin-cos position embedding");
        if (InputSize % PatchSize != 0)
            throw new ArgumentException($"input size {InputSize} is not divisible by the patch size {PatchSize}");
        if (Frames < 0 || (Frames > 0 && Depth % 2 != 0))
            throw new ArgumentException($"a Latte model alternates spatial and temporal blocks: {Depth} blocks is not an even number (frames {Frames})");
        if (FrequencyEmbeddingSize % 2 != 0)
            throw new ArgumentException($"frequency embedding size {FrequencyEmbeddingSize} must be even");
        return this;
    }

    // Presets from the bottom of models.py: DiT_{XL,L,B,S}_{2,4,8}.
    /// <summary>DiT-XL: depth 28, hidden 1152, 16 heads, with patch <paramref name="patch"/>.</summary>
    public static DitConfig XL(int patch) => new() { Depth = 28, HiddenSize = 1152, Heads = 16, PatchSize = patch };
    /// <summary>DiT-L: depth 24, hidden 1024, 16 heads, with patch <paramref name="patch"/>.</summary>
    public static DitConfig L(int patch) => new() { Depth = 24, HiddenSize = 1024, Heads = 16, PatchSize = patch };
    /// <summary>DiT-B: depth 12, hidden 768, 12 heads, with patch <paramref name="patch"/>.</summary>
    public static DitConfig B(int patch) => new() { Depth = 12, HiddenSize = 768, Heads = 12, PatchSize = patch };
    /// <summary>DiT-S: depth 12, hidden 384, 6 heads, with patch <paramref name="patch"/>.</summary>
    public static DitConfig S(int patch) => new() { Depth = 12, HiddenSize = 384, Heads = 6, PatchSize = patch };

    /// <summary>The names <see cref="Preset"/> accepts.</summary>
    public static IReadOnlyList<string> PresetNames { get; } =
        ["XL/2", "XL/4", "XL/8", "L/2", "L/4", "L/8", "B/2", "B/4", "B/8", "S/2", "S/4", "S/8"];

    /// <summary>A preset by name: "XL/2", "DiT-B/4", ... (case-insensitive).</summary>
    public static DitConfig Preset(string name)
    {
        string n = name.Trim().ToUpperInvariant();
        if (n.StartsWith("DIT-", StringComparison.Ordinal))
            n = n[4..];
        int slash = n.IndexOf('/', StringComparison.Ordinal);
        if (slash > 0 && int.TryParse(n[(slash + 1)..], out int patch) && patch is 2 or 4 or 8)
        {
            switch (n[..slash])
            {
                case "XL": return XL(patch);
                case "L": return L(patch);
                case "B": return B(patch);
                case "S": return S(patch);
            }
        }
        throw new Runtime.InvalidRequestException($"unknown DiT preset '{name}': expected one of {string.Join(", ", PresetNames)}", nameof(name));
    }

    /// <summary>The head count of the preset with this depth and width, if any (heads cannot be read from weights).</summary>
    public static int? PresetHeads(int depth, int hidden) => (depth, hidden) switch
    {
        (28, 1152) => 16,
        (24, 1024) => 16,
        (12, 768) => 12,
        (12, 384) => 6,
        _ => null,
    };

    /// <summary>The architecture's numbers on one line, for messages and reports.</summary>
    public override string ToString() =>
        $"depth {Depth}, hidden {HiddenSize}, heads {Heads}, patch {PatchSize}, in {InChannels}, out {OutChannels}, " +
        $"classes {NumClasses}, input {InputSize}" + (Frames > 0 ? $", frames {Frames}" : "");
}

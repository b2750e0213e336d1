using BlockDance.Runtime;

namespace BlockDance.Kernels;

/// <summary>Activation applied in the epilogue of <see cref="IOps.Linear"/>.</summary>
public enum Activation
{
    /// <summary>No activation: <c>y = x·wᵀ + b</c>.</summary>
    None,
    /// <summary><c>0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))</c>, PyTorch's <c>GELU(approximate="tanh")</c>.</summary>
    GeluTanh,
    /// <summary><c>x·σ(x)</c>.</summary>
    Silu,
}

/// <summary>
/// The operations a Diffusion Transformer needs, on one device. Every backend (the managed CPU device, CUDA, CUDA on the
/// emulator) implements exactly these with the same semantics; model code calls them on tensors and never branches on
/// the backend. All tensors must live on <see cref="Device"/>; floating-point activations use
/// <see cref="ActivationType"/> for storage and float32 for math. Ops are queued in order on the device's stream and
/// never synchronize, and once an op has run at a given shape it allocates nothing when run again at that shape or a
/// smaller one: the only memory ops own is a grow-only scratch (the attention workspace), which grows — and on CUDA
/// waits for the stream before freeing the old one — the first time a larger shape is seen.
/// <para>
/// Threads: ops are not thread-safe — their scratch is shared by every call, and on CUDA every call is queued on the
/// device's one stream. Callers that use ops (or a model built on them) from several threads hold the device's
/// <see cref="Runtime.Device.StepLock"/> around each unit of work; <c>SamplingRun</c> does so around each step, which
/// is what makes concurrent generations on one model give the bytes of sequential ones.
/// </para>
/// <para>
/// Ownership: ops that own their device (<see cref="Backends.Open"/>) drop its owner reference on
/// <see cref="IDisposable.Dispose"/>; the device lives on while tensors allocated on it do. Using disposed CUDA ops
/// throws <see cref="ObjectDisposedException"/>.
/// </para>
/// </summary>
public interface IOps : IDisposable
{
    /// <summary>The device every tensor given to these ops must live on.</summary>
    Device Device { get; }

    /// <summary>Storage type of activations and weights on this backend (the CPU device: F32).</summary>
    DType ActivationType { get; }

    /// <summary><c>y[M,N] = act(x[M,K] · w[N,K]ᵀ + b[N])</c>, the PyTorch <c>nn.Linear</c> convention. <paramref name="b"/> may be null.</summary>
    void Linear(Tensor x, Tensor w, Tensor? b, Tensor y, Activation act = Activation.None);

    /// <summary><c>y = x·σ(x)</c>, elementwise; <paramref name="y"/> may be <paramref name="x"/>.</summary>
    void Silu(Tensor x, Tensor y);

    /// <summary><c>y = a + b</c>, elementwise, same shapes; <paramref name="y"/> may alias an input.</summary>
    void Add(Tensor a, Tensor b, Tensor y);

    /// <summary>
    /// LayerNorm without affine parameters over the last dimension D (biased variance, <paramref name="eps"/> inside the
    /// square root), then adaLN modulation: <c>y[b,t,:] = LN(x[b,t,:])·(1 + scale[b,:]) + shift[b,:]</c>, where
    /// <c>shift = mod[b, shiftChunk·D : (shiftChunk+1)·D]</c> and likewise scale. x, y: [B, T, D]; mod: [B, n·D].
    /// </summary>
    void LayerNormModulate(Tensor x, Tensor mod, int shiftChunk, int scaleChunk, float eps, Tensor y);

    /// <summary>Gated residual: <c>x[b,t,:] += mod[b, gateChunk·D : (gateChunk+1)·D] ⊙ h[b,t,:]</c>. x, h: [B, T, D].</summary>
    void GatedResidualAdd(Tensor x, Tensor h, Tensor mod, int gateChunk);

    /// <summary>
    /// Multi-head self-attention core, timm layout: <paramref name="qkv"/> [B, T, 3D] holds q, k, v in column blocks
    /// <c>[0,D)</c>, <c>[D,2D)</c>, <c>[2D,3D)</c>, head h in columns <c>[h·Dh, (h+1)·Dh)</c> of each block.
    /// <c>y[b,t,h·Dh+d] = Σ_s softmax_s(q·k/√Dh) v[s,d]</c>; y: [B, T, D] (heads concatenated, before the output projection).
    /// </summary>
    void Attention(Tensor qkv, int heads, Tensor y);

    /// <summary>
    /// im2col for a Conv2d with kernel = stride = p: <c>cols[b, r·(W/p)+c, ch·p·p + i·p + j] = image[b, ch, r·p+i, c·p+j]</c>.
    /// image: [B, C, H, W]; cols: [B, T, C·p·p]. Multiplying by the conv weight viewed as [D, C·p·p] gives the patch tokens.
    /// </summary>
    void Patchify(Tensor image, int patch, Tensor cols);

    /// <summary><c>x[b,t,:] += pos[t,:]</c>. x: [B, T, D]; pos: [T, D].</summary>
    void AddPositionEmbedding(Tensor x, Tensor pos);

    /// <summary>
    /// Latte's token rearrangement between its two block kinds: <c>y[b, q, p, :] = x[b, p, q, :]</c>, x: [B, P, Q, D],
    /// y: [B, Q, P, D]. With P = frames and Q = patch tokens it is einops <c>'(b f) t d -> (b t) f d'</c> (a frame's
    /// tokens → a position's frames, before a temporal block); with P = tokens and Q = frames it is the way back. A
    /// pure permutation, bit-exact; y must not overlap x.
    /// </summary>
    void SwapFrameTokenAxes(Tensor x, Tensor y);

    /// <summary>
    /// DiT's unpatchify (<c>nhwpqc->nchpwq</c>): <c>image[b, ch, hi·p+i, wi·p+j] = x[b, hi·w+wi, (i·p+j)·C + ch]</c>.
    /// x: [B, T, p·p·C]; image: [B, C, H, W].
    /// </summary>
    void Unpatchify(Tensor x, int patch, Tensor image);

    /// <summary>
    /// Sinusoidal timestep features, <c>[cos(t·f) | sin(t·f)]</c> with <c>f[i] = exp(−ln(10⁴)·i/(half − shift))</c>,
    /// half = dim/2, computed in float32 like PyTorch. Original DiT: shift 0 (divides by 128); diffusers DiT: shift 1 (127).
    /// t: [B] F32 on the original 0..999 scale; y: [B, dim] (dim even).
    /// </summary>
    void TimestepEmbedding(Tensor t, int frequencyShift, Tensor y);

    /// <summary>
    /// <c>y[b,:] = table[ids[b],:]</c>. ids: [B] I32, each in <c>[0, V)</c>; table: [V, D]. The caller checks the ids
    /// (the sampling run does, on the host, before uploading them); should one be out of range anyway, the CPU device
    /// throws and the CUDA device, which cannot without a synchronizing download, writes a NaN row.
    /// </summary>
    void EmbeddingLookup(Tensor table, Tensor ids, Tensor y);

    /// <summary>
    /// Classifier-free guidance on a batch laid out <c>[cond₀..condₙ₋₁, uncond₀..uncondₙ₋₁]</c>:
    /// <c>y[i,c] = u + scale·(k − u)</c> for channels <c>c &lt; guidedChannels</c>, else <c>k</c>, where k = output[i,c], u = output[n+i,c].
    /// output: [2n, C, H, W]; y: [n, C, H, W].
    /// </summary>
    void GuidanceCombine(Tensor output, int guidedChannels, float scale, Tensor y);

    /// <summary>
    /// One DDIM-form update of <paramref name="x"/> [n, C, H, W] in place, per element, with ε from channels <c>[0, C)</c>
    /// of modelOutput [n, C', H, W] and the step's scalars a … e (the sampler computes them from its schedule).
    /// With <paramref name="rederiveEps"/>: <c>x0 = a·x − b·ε; ε' = (a·x − x0)/b; x' = c·x0 + d·ε' + e·noise</c>;
    /// without: <c>x0 = (x − b·ε)/a; x' = c·x0 + d·ε + e·noise</c>. noise may be null when e = 0.
    /// </summary>
    void DdimStep(Tensor x, Tensor modelOutput, float a, float b, float c, float d, float e, bool rederiveEps, Tensor? noise);

    /// <summary>
    /// One ancestral-form update of <paramref name="x"/> [n, C, H, W] in place with a learned variance range, per
    /// element, ε = channels <c>[0,C)</c> and v = channels <c>[C,2C)</c> of modelOutput [n, 2C, H, W]:
    /// <c>x0 = a·x − b·ε; mean = c1·x0 + c2·x; f = (v+1)/2; logσ² = f·maxLog + (1−f)·minLog;
    /// x' = mean + nonzero·exp(½logσ²)·noise</c>. noise may be null when nonzero = 0 (the last step).
    /// </summary>
    void AncestralStep(Tensor x, Tensor modelOutput, float a, float b, float c1, float c2, float minLog, float maxLog, float nonzero, Tensor? noise);

    /// <summary>
    /// The caching indicator: per batch item b of <paramref name="x"/> and <paramref name="reference"/> (the same shape,
    /// [B, …], activation type), the relative L1 distance <c>r[b] = Σⱼ|x[b,j] − ref[b,j]| / Σⱼ|ref[b,j]|</c> (0 when both
    /// sums are 0, +∞ when only the reference's is), then <c>result[b] = (accumulate ? result[b] : 0) + weight·r[b]</c>.
    /// <paramref name="result"/> is F32 [B] on the same device, so a mean over several tensors (blocks) is reduced on the
    /// device and one download of B floats brings it to the host. Each item's sums are independent of the batch size.
    /// </summary>
    void RelativeL1(Tensor x, Tensor reference, Tensor result, float weight, bool accumulate);

    /// <summary>
    /// Fills <paramref name="y"/> (F32, or the activation type) with standard normal samples that depend only on (seed, offset + element index):
    /// Philox4x32-10 counters and a Box–Muller transform, so every backend and thread count draws the same numbers.
    /// </summary>
    void RandomNormal(Tensor y, ulong seed, ulong offset);
}

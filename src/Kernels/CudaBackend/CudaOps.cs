using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;
using BlockDance.Runtime.Cuda.Native;

namespace BlockDance.Kernels.Cuda;

/// <summary>
/// The CUDA backend of <see cref="IOps"/>: the project's kernels (<c>src/Kernels/cuda/*.cu</c>, launched by
/// <see cref="CudaKernels"/>) and cuBLAS GEMMs, all queued in order on the device's one stream. Runs unchanged on a GPU
/// (<c>cuda</c>) and on the CPU emulator (<c>cuda-emu</c>). Activations are stored in <see cref="ActivationType"/>
/// (F32, F16 or BF16) and computed in float32; GEMMs accumulate in float32 (<c>CUBLAS_COMPUTE_32F</c>, no TF32).
/// <para>
/// Nothing is allocated per call except a grow-only device workspace (attention scores and probabilities; the float32
/// GEMM result that the bias/activation epilogue rounds for 16-bit types). It grows on the first call with a larger
/// shape — that growth waits for the stream, so that the old buffer is no longer in use — and is then reused.
/// </para>
/// <para>
/// Ownership: <see cref="CudaOps(CudaDevice, DType)"/> borrows the device (the caller disposes it after the ops);
/// <see cref="Open"/> opens a device that the ops own and dispose. <see cref="Dispose"/> frees the workspace and
/// unloads the modules. Not thread-safe: use one instance from one thread at a time, like the device's stream.
/// </para>
/// </summary>
public sealed unsafe class CudaOps : IOps
{
    private readonly CudaDevice _device;
    private readonly bool _ownsDevice;
    private readonly KernelModules _modules;
    private readonly bool _ownsModules;
    private readonly CudaKernels _kernels;
    private readonly int _cublasType;
    private Tensor? _workspace;
    private bool _disposed;

    /// <summary>Ops on a device the caller owns (and disposes after these ops).</summary>
    /// <param name="activationType">F32, F16 or BF16.</param>
    public CudaOps(CudaDevice device, DType activationType) : this(device, activationType, ownsDevice: false, modules: null)
    {
    }

    internal CudaOps(CudaDevice device, DType activationType, bool ownsDevice, KernelModules? modules)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (activationType is not (DType.F32 or DType.F16 or DType.BF16))
            throw new ArgumentException($"CUDA activations are F32, F16 or BF16, not {activationType}", nameof(activationType));
        _device = device;
        _ownsDevice = ownsDevice;
        ActivationType = activationType;
        _cublasType = CublasApi.DataType(activationType);
        _ownsModules = modules is null;
        _modules = modules ?? new KernelModules(device);
        _kernels = new CudaKernels(device, _modules, activationType);
    }

    /// <summary>Opens device 0 of <paramref name="backend"/> for ops that own it (disposed with them).</summary>
    public static CudaOps Open(CudaBackend backend, DType activationType)
    {
        var device = CudaDevice.Open(backend);
        try
        {
            return new CudaOps(device, activationType, ownsDevice: true, modules: null);
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }

    public Device Device => _device;
    public CudaDevice CudaDevice => _device;
    public DType ActivationType { get; }

    /// <summary>The loaded kernel modules (for tests and the kernel benchmarks).</summary>
    internal KernelModules Modules => _modules;

    /// <summary>Bytes of the grow-only workspace currently allocated.</summary>
    public long WorkspaceBytes => _workspace?.ByteCount ?? 0;

    // ---------------------------------------------------------------------------------------------------------------
    // Linear: cuBLAS GEMM, then the bias/activation epilogue (linear.cu)

    public void Linear(Tensor x, Tensor w, Tensor? b, Tensor y, Activation act = Activation.None)
    {
        _kernels.Activations("Linear", x, w, y);
        if (b is not null)
            _kernels.Activations("Linear", b);
        var (m, n, k) = Check.Linear(x, w, b, y);
        if (m == 0 || n == 0)
            return;
        if (b is null && act == Activation.None)
        {
            Gemm(w.Address, x.Address, y.Address, _cublasType, m, n, k);
            return;
        }
        if (ActivationType == DType.F32)
        {
            // The float32 product lands in y; the epilogue then runs in place.
            Gemm(w.Address, x.Address, y.Address, CublasApi.R32F, m, n, k);
            _kernels.BiasActivation(y.Address, b, y, act);
            return;
        }
        // 16-bit storage: the product stays float32 in the workspace, so it is rounded once, after bias and activation.
        nint acc = Workspace((long)m * n * sizeof(float));
        Gemm(w.Address, x.Address, acc, CublasApi.R32F, m, n, k);
        _kernels.BiasActivation(acc, b, y, act);
    }

    /// <summary>
    /// Row-major <c>Y[M,N] = X[M,K]·W[N,K]ᵀ</c> as column-major cuBLAS: Yᵀ (N×M, ld N) = Wᵀ·X with W stored as a K×N
    /// column-major matrix (ld K, transposed) and X as K×M (ld K): <c>GemmEx(T, N, m=N, n=M, k=K)</c>.
    /// </summary>
    private void Gemm(nint w, nint x, nint y, int yType, int m, int n, int k)
    {
        float alpha = 1f, beta = 0f;
        _device.MakeCurrent();
        // SAFETY: alpha and beta are host scalars (the handle's default host pointer mode), read by cuBLAS before the
        // call returns; w, x, y are device addresses of tensors whose shapes the caller checked against m, n, k.
        _device.CheckBlas(_device.Blas.cublasGemmEx(_device.CublasHandle, CublasApi.OpT, CublasApi.OpN, n, m, k,
            &alpha, (ulong)w, _cublasType, k, (ulong)x, _cublasType, k, &beta, (ulong)y, yType, n,
            CublasApi.Compute32F, CublasApi.GemmDefault));
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Elementwise and adaLN (elementwise.cu, adaln.cu)

    public void Silu(Tensor x, Tensor y) => _kernels.Silu(x, y);

    public void Add(Tensor a, Tensor b, Tensor y) => _kernels.Add(a, b, y);

    public void LayerNormModulate(Tensor x, Tensor mod, int shiftChunk, int scaleChunk, float eps, Tensor y) =>
        _kernels.LayerNormModulate(x, mod, shiftChunk, scaleChunk, eps, y);

    public void GatedResidualAdd(Tensor x, Tensor h, Tensor mod, int gateChunk) => _kernels.GatedResidualAdd(x, h, mod, gateChunk);

    // ---------------------------------------------------------------------------------------------------------------
    // Attention: two strided-batched GEMMs over the heads around the softmax (softmax.cu)

    /// <summary>
    /// For each batch item b, straight out of the packed qkv buffer (row t of item b holds q | k | v, head h at column
    /// h·Dh of each): in column-major terms Q_h, K_h and V_h are Dh×T matrices with leading dimension 3D, head h at
    /// element offset h·Dh, so the heads are one strided batch (stride Dh).
    /// <list type="number">
    /// <item>S_h (T×T, column-major, ld T) = scale·K_hᵀ·Q_h, i.e. S_h[s + t·T] = scale·Σ_d k[s,d]·q[t,d]: row t of the
    ///   row-major view holds query t's scores over the keys. float32 (<c>GemmStridedBatchedEx(T, N, m=T, n=T, k=Dh)</c>).</item>
    /// <item>P = softmax over each of those H·T rows, in the storage type (in place for F32).</item>
    /// <item>O_h (Dh×T, ld D, at y + b·T·D + h·Dh) = V_h·P_h: O[d + t·D] = Σ_s v[s,d]·p[t,s]
    ///   (<c>GemmStridedBatchedEx(N, N, m=Dh, n=T, k=T)</c>); the heads land concatenated in y.</item>
    /// </list>
    /// The workspace holds one item's scores (H·T² floats) and probabilities.
    /// </summary>
    public void Attention(Tensor qkv, int heads, Tensor y)
    {
        _kernels.Activations("Attention", qkv, y);
        var (batch, tokens, d, dh) = Check.Attention(qkv, heads, y);
        if (batch == 0 || tokens == 0 || d == 0)
            return;
        long scoresCount = (long)heads * tokens * tokens;
        if (scoresCount > int.MaxValue)
            throw new ArgumentException($"Attention: {heads} heads × {tokens}² scores exceed 2^31 − 1 elements");
        int elem = ActivationType.SizeOf();
        long scoresBytes = scoresCount * sizeof(float);
        long probsOffset = ActivationType == DType.F32 ? 0 : (scoresBytes + 255) / 256 * 256;
        nint scores = Workspace(probsOffset + (ActivationType == DType.F32 ? scoresBytes : scoresCount * elem));
        nint probs = scores + (nint)probsOffset;
        float scale = 1f / MathF.Sqrt(dh), one = 1f, zero = 0f;
        int ld = 3 * d, tt = tokens;
        long tokenSquare = (long)tokens * tokens;
        // SAFETY: scale/one/zero are host scalars read during each call; every device address below is inside qkv, y
        // or the workspace, whose sizes were checked (qkv [B, T, 3D], y [B, T, D]) or allocated (H·T² scores) above.
        for (int b = 0; b < batch; b++)
        {
            nint q = qkv.Address + (nint)((long)b * tokens * 3 * d * elem);
            nint k = q + (nint)((long)d * elem), v = q + (nint)(2L * d * elem);
            nint o = y.Address + (nint)((long)b * tokens * d * elem);
            _device.MakeCurrent();
            _device.CheckBlas(_device.Blas.cublasGemmStridedBatchedEx(_device.CublasHandle, CublasApi.OpT, CublasApi.OpN,
                tt, tt, dh, &scale,
                (ulong)k, _cublasType, ld, dh,
                (ulong)q, _cublasType, ld, dh,
                &zero, (ulong)scores, CublasApi.R32F, tt, tokenSquare, heads,
                CublasApi.Compute32F, CublasApi.GemmDefault));
            _kernels.Softmax(scores, probs, heads * tokens, tokens);
            _device.CheckBlas(_device.Blas.cublasGemmStridedBatchedEx(_device.CublasHandle, CublasApi.OpN, CublasApi.OpN,
                dh, tt, tt, &one,
                (ulong)v, _cublasType, ld, dh,
                (ulong)probs, _cublasType, tt, tokenSquare,
                &zero, (ulong)o, _cublasType, d, dh, heads,
                CublasApi.Compute32F, CublasApi.GemmDefault));
        }
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Patches, embeddings, sampling, noise (patch.cu, embedding.cu, sampling.cu, random.cu)

    public void Patchify(Tensor image, int patch, Tensor cols) => _kernels.Patchify(image, patch, cols);

    public void AddPositionEmbedding(Tensor x, Tensor pos) => _kernels.AddPositionEmbedding(x, pos);

    public void Unpatchify(Tensor x, int patch, Tensor image) => _kernels.Unpatchify(x, patch, image);

    public void SwapFrameTokenAxes(Tensor x, Tensor y) => _kernels.SwapFrameTokenAxes(x, y);

    public void TimestepEmbedding(Tensor t, int frequencyShift, Tensor y) => _kernels.TimestepEmbedding(t, frequencyShift, y);

    public void EmbeddingLookup(Tensor table, Tensor ids, Tensor y) => _kernels.EmbeddingLookup(table, ids, y);

    public void GuidanceCombine(Tensor output, int guidedChannels, float scale, Tensor y) =>
        _kernels.GuidanceCombine(output, guidedChannels, scale, y);

    public void DdimStep(Tensor x, Tensor modelOutput, in DdimCoefficients c, Tensor? noise) => _kernels.DdimStep(x, modelOutput, c, noise);

    public void AncestralStep(Tensor x, Tensor modelOutput, in AncestralCoefficients c, Tensor? noise) =>
        _kernels.AncestralStep(x, modelOutput, c, noise);

    /// <summary>Fills y (F32, or the activation type) with the same Philox normals as the CPU device.</summary>
    public void RandomNormal(Tensor y, ulong seed, ulong offset) => _kernels.RandomNormal(y, seed, offset);

    // ---------------------------------------------------------------------------------------------------------------

    /// <summary>At least <paramref name="bytes"/> of device scratch, grown (never shrunk) in whole MiB.</summary>
    private nint Workspace(long bytes)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_workspace is { } current && current.ByteCount >= bytes)
            return current.Address;
        if (_workspace is not null)
        {
            // Kernels queued earlier may still read the old buffer; growth is rare, so simply wait for them.
            _device.Synchronize();
            _workspace.Dispose();
            _workspace = null;
        }
        long mib = (bytes + (1 << 20) - 1) >> 20;
        _workspace = _device.Allocate(DType.U8, checked((int)mib), 1 << 20);
        return _workspace.Address;
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        // Release everything even after a device fault: a failing wait must not keep the rest alive, nor replace
        // the exception that brought us here (Dispose does not throw; failures are traced by the device).
        if (_workspace is not null)
        {
            _device.TryRelease(() => _device.Synchronize(), "cuStreamSynchronize (before freeing the workspace)");
            _workspace.Dispose();
            _workspace = null;
        }
        if (_ownsModules)
            _modules.Dispose();
        if (_ownsDevice)
            _device.Dispose();
    }

    public override string ToString() => $"CudaOps({_device.Name}, {ActivationType.ShortName()})";
}

using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;

namespace BlockDance.Kernels.Cuda;

/// <summary>
/// The CUDA backend of <see cref="IOps"/>: the project's kernels (<c>src/Kernels/cuda/*.cu</c>) and cuBLAS GEMMs, all
/// queued in order on the device's one stream. Runs unchanged on a GPU (<c>cuda</c>) and on the CPU emulator
/// (<c>cuda-emu</c>). Activations are stored in <see cref="ActivationType"/> (F32, F16 or BF16) and computed in float32;
/// GEMMs accumulate in float32 (<c>CUBLAS_COMPUTE_32F</c>, no TF32).
/// <para>
/// One file per op family, named after its kernel module: <c>CudaOps.{Module}.cs</c> holds the IOps methods of
/// <c>cuda/{module}.cu</c>, each kernel's argument struct (marked <see cref="KernelAttribute"/>: the kernel's one
/// declaration) and the launch, one line: shape checks, launch configuration, <c>Launch(type, grid, block, 0, new
/// Args { … })</c>. This file holds what the families share: construction, the workspace and the operand checks.
/// </para>
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
public sealed partial class CudaOps : IOps
{
    /// <summary>Threads per block of the elementwise kernels (grid-stride loops).</summary>
    private const uint ElementwiseBlock = 256;

    private readonly CudaDevice _device;
    private readonly bool _ownsDevice;
    private readonly KernelLoader _loader;
    private readonly bool _ownsLoader;
    private readonly long _maxElementwiseBlocks;
    private Tensor? _workspace;
    private bool _disposed;

    /// <summary>Ops on a device the caller owns (and disposes after these ops).</summary>
    /// <param name="device">The device (borrowed).</param>
    /// <param name="activationType">F32, F16 or BF16.</param>
    public CudaOps(CudaDevice device, DType activationType) : this(device, activationType, ownsDevice: false, loader: null)
    {
    }

    internal CudaOps(CudaDevice device, DType activationType, bool ownsDevice, KernelLoader? loader)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (activationType is not (DType.F32 or DType.F16 or DType.BF16))
            throw new ArgumentException($"CUDA activations are F32, F16 or BF16, not {activationType}", nameof(activationType));
        _device = device;
        _ownsDevice = ownsDevice;
        ActivationType = activationType;
        _ownsLoader = loader is null;
        _loader = loader ?? new KernelLoader(device);
        // One full wave: 2048 resident threads per SM on sm_80/sm_90 = 8 blocks of 256.
        _maxElementwiseBlocks = Math.Max(1, device.MultiprocessorCount) * 8L;
    }

    /// <summary>Opens device 0 of <paramref name="backend"/> for ops that own it (disposed with them).</summary>
    public static CudaOps Open(CudaBackend backend, DType activationType)
    {
        var device = CudaDevice.Open(backend);
        try
        {
            return new CudaOps(device, activationType, ownsDevice: true, loader: null);
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public Device Device => _device;

    /// <summary>The CUDA device the ops run on.</summary>
    public CudaDevice CudaDevice => _device;

    /// <inheritdoc/>
    public DType ActivationType { get; }

    /// <summary>The loaded kernel modules (for tests).</summary>
    internal KernelLoader Loader => _loader;

    /// <summary>Bytes of the grow-only workspace currently allocated.</summary>
    public long WorkspaceBytes => _workspace?.ByteCount ?? 0;

    /// <summary>Launches the kernel of <typeparamref name="TArgs"/> in the activation type.</summary>
    private void Launch<TArgs>(uint grid, uint block, in TArgs args) where TArgs : unmanaged, IKernelArgs =>
        _loader.Launch(ActivationType, grid, block, 0, args);

    /// <summary>Blocks of <see cref="ElementwiseBlock"/> threads for a grid-stride loop over <paramref name="total"/>
    /// elements: one per 256 elements, at most one full wave (8 blocks per SM).</summary>
    private uint ElementwiseGrid(long total) => (uint)Math.Min((total + ElementwiseBlock - 1) / ElementwiseBlock, _maxElementwiseBlocks);

    /// <summary>The element count as the kernels' 32-bit index range (unsigned loops: total + stride cannot wrap).</summary>
    private static int Total(long count, string op) => count <= int.MaxValue ? (int)count
        : throw new ArgumentException($"{op}: {count} elements exceed the CUDA kernels' 32-bit indexing (at most 2^31 − 1)");

    /// <summary>Activations: on this device and in the backend's storage type.</summary>
    private void Activations(string op, params ReadOnlySpan<Tensor> tensors)
    {
        foreach (var t in tensors)
        {
            OnDevice(op, t);
            if (t.DType != ActivationType)
                throw new ArgumentException($"{op}: expected {ActivationType} tensors (the backend's activation type), got {t}");
        }
    }

    private void OnDevice(string op, Tensor t)
    {
        if (!ReferenceEquals(t.Device, _device))
            throw new ArgumentException($"{op}: {t} does not live on this CUDA device ({_device.Name})");
    }

    /// <summary>At least <paramref name="bytes"/> of device scratch, grown (never shrunk) in whole MiB.</summary>
    private nint Workspace(long bytes)
    {
        if (_disposed)
            throw new ObjectDisposedException(nameof(CudaOps), $"the CudaOps of {_device.Name} were disposed");
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

    /// <summary>Frees the workspace, unloads the modules it loaded and disposes the device if it owns it.</summary>
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
        if (_ownsLoader)
            _loader.Dispose();
        if (_ownsDevice)
            _device.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => $"CudaOps({_device.Name}, {ActivationType.ShortName()})";
}

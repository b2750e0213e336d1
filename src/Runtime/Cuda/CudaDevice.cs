using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BlockDance.Runtime.Cuda.Native;

namespace BlockDance.Runtime.Cuda;

/// <summary>
/// A CUDA device: its primary context, one non-blocking stream on which every copy and kernel is queued in order, and a
/// cuBLAS handle bound to that stream. Memory is <c>cuMemAlloc</c>'d; uploads and downloads wait for their copy,
/// device-to-device copies and kernels do not (call <see cref="Synchronize"/>). The driver context is current per OS
/// thread, so every entry point makes it current on the calling thread first (once per thread). Every status goes
/// through <see cref="Check"/>, which throws a <see cref="CudaException"/> naming the call.
/// <para>
/// Ownership: the context, the stream and the cuBLAS handle belong to the device's lifetime (a
/// <see cref="System.Runtime.InteropServices.SafeHandle"/>), released when the owner has disposed the device and every
/// allocation, module and timer on it is gone as well (each holds a reference), or by the finaliser. Using the device
/// after that throws <see cref="ObjectDisposedException"/>.
/// </para>
/// </summary>
public sealed unsafe partial class CudaDevice : Device
{
    [ThreadStatic] private static long t_current;   // Id of the device whose context is current on this thread
    private static long s_nextId;

    private readonly long _id = Interlocked.Increment(ref s_nextId);
    private readonly nint _context;
    private nint _stream;
    private nint _cublas;

    private CudaDevice(CudaBackend backend, CudaDriverApi api, CublasApi blas, int ordinal)
    {
        Backend = backend;
        Api = api;
        Blas = blas;
        Ordinal = ordinal;
        if (backend == CudaBackend.Emulator)
            Emulator = new EmulatorControl(api.Library);
        int count = 0, device = 0;
        Check(api.cuDeviceGetCount(&count));
        if (ordinal < 0 || ordinal >= count)
            throw new CudaUnavailableException($"CUDA device {ordinal} does not exist; this machine has {count}");
        Check(api.cuDeviceGet(&device, ordinal));
        Handle = device;
        byte* name = stackalloc byte[256];
        Check(api.cuDeviceGetName(name, 256, device));
        DeviceName = Marshal.PtrToStringUTF8((nint)name) ?? "?";
        ComputeCapability = (Attribute(CudaDriverApi.AttrComputeCapabilityMajor), Attribute(CudaDriverApi.AttrComputeCapabilityMinor));
        MultiprocessorCount = Attribute(CudaDriverApi.AttrMultiprocessorCount);
        MaxSharedMemoryPerBlock = Attribute(CudaDriverApi.AttrMaxSharedMemoryPerBlock);
        MaxSharedMemoryPerBlockOptin = Attribute(CudaDriverApi.AttrMaxSharedMemoryPerBlockOptin);
        nuint total = 0;
        Check(api.cuDeviceTotalMem(&total, device));
        TotalMemory = (long)total;
        nint context = 0;
        Check(api.cuDevicePrimaryCtxRetain(&context, device));
        _context = context;
        try
        {
            MakeCurrent();
            nint stream = 0;
            Check(api.cuStreamCreate(&stream, CudaDriverApi.StreamNonBlocking));
            _stream = stream;
            nint handle = 0;
            CheckBlas(blas.cublasCreate(&handle));
            _cublas = handle;
            CheckBlas(blas.cublasSetStream(_cublas, _stream));
            // fp32 GEMMs stay fp32: no TF32 (PyTorch parity; DiT's README notes its FID numbers used TF32 off).
            CheckBlas(blas.cublasSetMathMode(_cublas, CublasApi.DefaultMath));
        }
        catch
        {
            Dispose();   // releases whatever was created, and the retained context
            throw;
        }
    }

    /// <summary>
    /// Opens device <paramref name="ordinal"/> of a backend. On a machine without a GPU, <see cref="CudaBackend.Nvidia"/>
    /// fails with a <see cref="CudaUnavailableException"/> that suggests the emulator.
    /// </summary>
    public static CudaDevice Open(CudaBackend backend, int ordinal = 0)
    {
        var api = new CudaDriverApi(CudaLibraries.LoadDriver(backend));
        int r = api.cuInit(0);
        if (r == CudaDriverApi.ErrorNoDevice)
            throw new CudaUnavailableException("the NVIDIA driver is installed but this machine has no CUDA GPU (cuInit: CUDA_ERROR_NO_DEVICE); use --device cuda-emu to run the CUDA code on the CPU emulator");
        if (r != 0)
            throw new CudaUnavailableException($"cuInit(0) failed: {ErrorName(api, r)} ({r}); use --device cuda-emu to run the CUDA code on the CPU emulator");
        var blas = new CublasApi(CudaLibraries.LoadCublas(backend));
        return new CudaDevice(backend, api, blas, ordinal);
    }

    /// <summary>True when NVIDIA's driver loads and finds a GPU (for tests that skip without one).</summary>
    public static bool IsGpuAvailable(out string why)
    {
        var lib = NativeLibraryHandle.TryLoad(["libcuda.so.1"], out string tried);
        if (lib is null)
        {
            why = $"no NVIDIA driver ({tried} not found)";
            return false;
        }
        var api = new CudaDriverApi(lib);
        int r = api.cuInit(0), count = 0;
        if (r == 0)
            r = api.cuDeviceGetCount(&count);
        why = r != 0 ? $"cuInit/cuDeviceGetCount: {ErrorName(api, r)}" : count == 0 ? "no CUDA device" : "";
        return r == 0 && count > 0;
    }

    internal CudaDriverApi Api { get; }

    /// <summary>The primary context (CUcontext), for release paths that must make it current without the disposed check.</summary>
    internal nint Context => _context;

    /// <summary>Forgets which context is current on this thread (after a release path set it directly).</summary>
    internal void ForgetCurrent() => t_current = 0;
    internal CublasApi Blas { get; }

    /// <summary>Which driver this device runs on: NVIDIA's (a real GPU) or the CPU emulator of native/.</summary>
    public CudaBackend Backend { get; }

    /// <summary>The emulator's controls and counters; null on a real GPU.</summary>
    internal EmulatorControl? Emulator { get; }

    /// <summary>
    /// On the emulator, the parameter signature of a registered kernel (p pointer, i/u 32-bit, l/L 64-bit, f float,
    /// d double), so that a launcher can check its argument struct against the kernel; null on a real GPU (which has no
    /// such table) and for an unknown kernel.
    /// </summary>
    public string? EmulatedKernelSignature(string kernel) => Emulator?.KernelSignature(kernel);

    /// <summary>True when this device runs on the CPU emulator of native/ rather than an NVIDIA GPU.</summary>
    public bool IsEmulated => Emulator is not null;

    /// <summary>The device's ordinal (0 for the first GPU).</summary>
    public int Ordinal { get; }
    /// <summary>The driver's device handle (CUdevice).</summary>
    public int Handle { get; }
    /// <summary>The device's name as the driver reports it (e.g. "NVIDIA H100 80GB HBM3").</summary>
    public string DeviceName { get; }
    /// <summary>The compute capability, e.g. (8, 9) for sm_89.</summary>
    public (int Major, int Minor) ComputeCapability { get; }
    /// <summary>Number of streaming multiprocessors (SMs).</summary>
    public int MultiprocessorCount { get; }
    /// <summary>Shared memory a block may use without opting in, in bytes.</summary>
    public int MaxSharedMemoryPerBlock { get; }
    /// <summary>Shared memory a block may use after opting in (cuFuncSetAttribute), in bytes.</summary>
    public int MaxSharedMemoryPerBlockOptin { get; }
    /// <summary>Total device memory in bytes.</summary>
    public long TotalMemory { get; }

    /// <summary>Peak DRAM bandwidth from the attributes: 2 (double data rate) × memory clock × bus width; 0 if unknown.</summary>
    public double PeakMemoryBandwidthGBs =>
        2.0 * Attribute(CudaDriverApi.AttrMemoryClockRate) * 1e3 * Attribute(CudaDriverApi.AttrGlobalMemoryBusWidth) / 8 / 1e9;

    /// <summary>Peak fp32 FMA throughput: SMs × fp32 lanes per SM (64 on sm_80, 128 on sm_86 and newer) × 2 × clock; 0 if unknown.</summary>
    public double PeakFp32Tflops =>
        MultiprocessorCount * (ComputeCapability == (8, 0) ? 64 : 128) * 2.0 * Attribute(CudaDriverApi.AttrClockRate) * 1e3 / 1e12;

    /// <summary>The stream every operation of this device is queued on (CUstream).</summary>
    public nint Stream => _stream;

    /// <summary>The cuBLAS handle bound to <see cref="Stream"/>.</summary>
    public nint CublasHandle => _cublas;

    /// <inheritdoc/>
    public override string Name => Backend == CudaBackend.Emulator ? "cuda-emu" : "cuda";
    /// <inheritdoc/>
    public override bool IsHostMemory => false;

    /// <summary>The value of a device attribute (a CUdevice_attribute number); throws <see cref="CudaException"/> when the driver refuses.</summary>
    public int Attribute(int attribute)
    {
        int value = 0;
        Check(Api.cuDeviceGetAttribute(&value, attribute, Handle));
        return value;
    }

    /// <summary>Makes this device's context current on the calling thread (a no-op when it already is).</summary>
    public void MakeCurrent()
    {
        ThrowIfReleased();
        if (t_current == _id)
            return;
        Check(Api.cuCtxSetCurrent(_context));
        t_current = _id;
    }

    /// <summary>Throws a <see cref="CudaException"/> for a failed driver call, naming it; on the emulator with its detailed report.</summary>
    public void Check(int result, [CallerArgumentExpression(nameof(result))] string? call = null)
    {
        if (result == 0)
            return;
        string description = ErrorString(Api, result);
        if (Emulator?.LastError() is { Length: > 0 } detail)
            description += $" — emulator: {detail}";
        throw new CudaException(Trim(call), result, ErrorName(Api, result), description);
    }

    /// <summary>Throws a <see cref="CublasException"/> for a failed cuBLAS call, naming it.</summary>
    public void CheckBlas(int status, [CallerArgumentExpression(nameof(status))] string? call = null)
    {
        if (status == 0)
            return;
        string description = Blas.cublasGetStatusString is not null && Blas.cublasGetStatusString(status) is var p && p is not null
            ? Marshal.PtrToStringUTF8((nint)p) ?? "" : "cuBLAS error";
        if (Emulator?.LastError() is { Length: > 0 } detail)
            description += $" — emulator: {detail}";
        throw new CublasException(Trim(call), status, description);
    }

    private static string Trim(string? call) => call is null ? "CUDA call" : call.Replace("Api.", "", StringComparison.Ordinal).Replace("Blas.", "", StringComparison.Ordinal);

    internal static string ErrorName(CudaDriverApi api, int code)
    {
        byte* s = null;
        return api.cuGetErrorName(code, &s) == 0 && s is not null ? Marshal.PtrToStringUTF8((nint)s) ?? $"CUresult {code}" : $"CUresult {code}";
    }

    private static string ErrorString(CudaDriverApi api, int code)
    {
        byte* s = null;
        return api.cuGetErrorString(code, &s) == 0 && s is not null ? Marshal.PtrToStringUTF8((nint)s) ?? "" : "unknown error";
    }

    /// <inheritdoc/>
    protected override nint AllocateBytes(long bytes)
    {
        MakeCurrent();
        ulong p = 0;
        Check(Api.cuMemAlloc(&p, (nuint)bytes));
        return (nint)p;
    }

    /// <inheritdoc/>
    protected override void FreeBytes(nint address, long bytes)
    {
        // The allocation holds a reference on the device, so the context is still there.
        // Called from Tensor.Dispose, often while another exception unwinds: report, never throw.
        if (Api.cuCtxSetCurrent(_context) is int r && r != 0)
        {
            DisposeFailure("cuCtxSetCurrent (freeing memory)", r);
            return;
        }
        t_current = _id;
        if (Api.cuMemFree((ulong)address) is int f && f != 0)
            DisposeFailure("cuMemFree_v2", f);
    }

    /// <summary>
    /// Runs a release step of a Dispose path; a failure (e.g. a sticky fault of the context) is traced and swallowed so
    /// that the remaining resources are still released and the exception already in flight is not replaced.
    /// </summary>
    public void TryRelease(Action release, string what)
    {
        try
        {
            release();
        }
        catch (Exception e) when (e is CudaException or CublasException)
        {
            System.Diagnostics.Trace.TraceWarning($"{Name}: {what} failed while releasing resources: {e.Message}");
        }
    }

    internal void DisposeFailure(string call, int code) =>
        System.Diagnostics.Trace.TraceWarning($"{Name}: {call} failed while releasing resources: {ErrorName(Api, code)} ({code})");

    /// <inheritdoc/>
    public override void Upload(ReadOnlySpan<byte> src, Tensor dst)
    {
        CheckOwn(dst, "upload into");
        if (src.Length != dst.ByteCount)
            throw new ArgumentException($"upload of {src.Length} bytes into {dst} ({dst.ByteCount} bytes)");
        MakeCurrent();
        fixed (byte* p = src)
        {
            Check(Api.cuMemcpyHtoDAsync((ulong)dst.Address, p, (nuint)src.Length, _stream));
            // The source is managed memory that may move once unpinned: wait until the copy has read it.
            Check(Api.cuStreamSynchronize(_stream));
        }
    }

    /// <inheritdoc/>
    public override void Download(Tensor src, Span<byte> dst)
    {
        CheckOwn(src, "download");
        if (dst.Length != src.ByteCount)
            throw new ArgumentException($"download of {src} ({src.ByteCount} bytes) into {dst.Length} bytes");
        MakeCurrent();
        fixed (byte* p = dst)
        {
            Check(Api.cuMemcpyDtoHAsync(p, (ulong)src.Address, (nuint)dst.Length, _stream));
            Check(Api.cuStreamSynchronize(_stream));
        }
    }

    /// <inheritdoc/>
    public override void Copy(Tensor src, Tensor dst)
    {
        CheckCopy(src, dst);
        MakeCurrent();
        Check(Api.cuMemcpyDtoDAsync((ulong)dst.Address, (ulong)src.Address, (nuint)dst.ByteCount, _stream));
    }

    /// <summary>Fills a tensor's bytes with a byte value, queued on the stream.</summary>
    public void Memset(Tensor t, byte value)
    {
        MakeCurrent();
        Check(Api.cuMemsetD8Async((ulong)t.Address, value, (nuint)t.ByteCount, _stream));
    }

    /// <inheritdoc/>
    public override void Synchronize()
    {
        MakeCurrent();
        Check(Api.cuStreamSynchronize(_stream));
    }

    /// <summary>Releases the stream, the cuBLAS handle and the context, once nothing on the device is left (see the class remarks).</summary>
    protected override void ReleaseResources()
    {
        if (_context == 0)
            return;   // the constructor failed before retaining the context: nothing to release
        // Every step runs whatever the previous one did, and nothing throws (see TryRelease).
        if (Api.cuCtxSetCurrent(_context) is int r && r != 0)
            DisposeFailure("cuCtxSetCurrent", r);
        if (_cublas != 0 && Blas.cublasDestroy(_cublas) is int b && b != 0)
            System.Diagnostics.Trace.TraceWarning($"{Name}: cublasDestroy_v2 failed while releasing resources ({b})");
        if (_stream != 0 && Api.cuStreamDestroy(_stream) is int s && s != 0)
            DisposeFailure("cuStreamDestroy_v2", s);
        _cublas = _stream = 0;
        if (Api.cuDevicePrimaryCtxRelease(Handle) is int c && c != 0)
            DisposeFailure("cuDevicePrimaryCtxRelease_v2", c);
        t_current = 0;
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Name}: {DeviceName}, sm_{ComputeCapability.Major}{ComputeCapability.Minor}, {MultiprocessorCount} SMs, {TotalMemory / (1 << 20)} MiB";
}

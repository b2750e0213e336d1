using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;

namespace BlockDance.Kernels.Cuda;

/// <summary>
/// The kernel modules of one <see cref="CudaDevice"/>, loaded lazily: the first launch of a kernel compiles its module
/// with NVRTC for <see cref="NvrtcCompiler.ArchitectureFor"/> the device (sm_90 on the emulator → CUBIN), or takes it
/// from the in-process or on-disk cache, loads it with <see cref="CudaModule"/> and looks up the function; later
/// launches read the cached CUfunction from an array. On the emulator without NVRTC a stub PTX naming the entry points
/// is loaded instead (the emulator runs its g++ build of the same sources); on a GPU without NVRTC loading fails with a
/// message saying what to install.
/// </summary>
internal sealed class KernelLoader : IDisposable
{
    // Images compiled in this process, by module; reused by every device with the same key (architecture).
    private static readonly KernelImage?[] s_images = new KernelImage?[KernelCatalog.ModuleCount];
    private static readonly Lock s_imagesLock = new();
    private static readonly Lazy<KernelCompiler?> s_defaultCompiler = new(() =>
        NvrtcCompiler.TryLoad() is { } nvrtc ? new KernelCompiler(nvrtc, KernelCompiler.DefaultCacheDirectory()) : null);

    private readonly CudaDevice _device;
    private readonly KernelCompiler? _compiler;
    private readonly CudaModule?[] _modules = new CudaModule?[KernelCatalog.ModuleCount];
    private readonly KernelImage?[] _images = new KernelImage?[KernelCatalog.ModuleCount];
    private readonly nint[] _functions = new nint[KernelCatalog.KernelCount * KernelCatalog.Types.Length];
    private readonly string?[] _checkedSignatures = new string?[KernelCatalog.KernelCount * KernelCatalog.Types.Length];
    private bool _disposed;

    /// <summary>Uses NVRTC if installed and the default disk cache.</summary>
    public KernelLoader(CudaDevice device) : this(device, s_defaultCompiler.Value, useProcessCache: true)
    {
    }

    /// <param name="compiler">null: no NVRTC (stub PTX on the emulator, an error on a GPU).</param>
    /// <param name="useProcessCache">Share compiled images with the other devices of this process.</param>
    public KernelLoader(CudaDevice device, KernelCompiler? compiler, bool useProcessCache = false)
    {
        _device = device;
        _compiler = compiler;
        UseProcessCache = useProcessCache;
        Architecture = compiler?.Nvrtc.ArchitectureFor(device.ComputeCapability);
    }

    public bool UseProcessCache { get; }

    /// <summary>The NVRTC target (sm_90, or compute_XX when this NVRTC lacks the device's sm), null without NVRTC.</summary>
    public string? Architecture { get; }

    /// <summary>The image a module was loaded from (null until it is loaded).</summary>
    public KernelImage? LoadedImage(KernelModule module) => _images[(int)module];

    /// <summary>The CUfunction of a per-function index (<see cref="KernelCatalog.Index"/>), loading its module on first use.</summary>
    public nint Function(int index)
    {
        nint f = _functions[index];
        return f != 0 ? f : Resolve(index);
    }

    private nint Resolve(int index)
    {
        ThrowIfDisposed();
        var module = Module(KernelCatalog.ModuleOf(index / KernelCatalog.Types.Length));
        return _functions[index] = module.Function(KernelCatalog.EntryPoint(index));
    }

    /// <summary>Loads (once) and returns a module.</summary>
    public CudaModule Module(KernelModule module)
    {
        ThrowIfDisposed();
        if (_modules[(int)module] is { } loaded)
            return loaded;
        var image = Image(module);
        CudaModule cuda;
        try
        {
            cuda = new CudaModule(_device, image.Bytes, KernelCatalog.FileName(module));
        }
        catch (CudaException) when (_compiler is not null && image.Source is KernelImageSource.DiskCache or KernelImageSource.MemoryCache)
        {
            // A cached image the driver rejects is never trusted: drop it and compile afresh (a second failure throws).
            _compiler.Evict(image);
            image = Compile(module, bypassCache: true);
            cuda = new CudaModule(_device, image.Bytes, KernelCatalog.FileName(module));
        }
        _images[(int)module] = image;
        return _modules[(int)module] = cuda;
    }

    private KernelImage Image(KernelModule module)
    {
        if (_compiler is null)
        {
            if (_device.Backend != CudaBackend.Emulator)
                throw new CudaUnavailableException(
                    "NVRTC (libnvrtc.so.12 or libnvrtc.so.11.2) is required to compile the CUDA kernels for the GPU, and it was not found; " +
                    "install the CUDA toolkit's NVRTC (Debian: libnvrtc11.2 from non-free) or put it on the loader path");
            return new KernelImage(module, KernelCatalog.StubPtx(module), false, "sm_90", "", KernelImageSource.EmulatorStub);
        }
        if (UseProcessCache)
        {
            lock (s_imagesLock)
            {
                if (s_images[(int)module] is { } shared && shared.Architecture == Architecture)
                    return shared with { Source = KernelImageSource.MemoryCache };
            }
        }
        return Compile(module, bypassCache: false);
    }

    private KernelImage Compile(KernelModule module, bool bypassCache)
    {
        var image = _compiler!.Get(module, Architecture!, bypassCache);
        if (UseProcessCache)
        {
            lock (s_imagesLock)
                s_images[(int)module] = image;
        }
        return image;
    }

    /// <summary>
    /// Launches the kernel that <typeparamref name="TArgs"/> declares, in storage type <paramref name="type"/>, on the
    /// device's stream, with <paramref name="args"/> passed whole as the parameter buffer. On the emulator the first
    /// launch of each entry point with each argument struct also checks the struct's field types and layout against the
    /// kernel's parameters (the emulator knows them from the g++ build), so a struct that disagrees fails with a message
    /// naming the kernel. Allocates nothing after that first launch.
    /// </summary>
    public void Launch<TArgs>(DType type, uint grid, uint block, uint sharedBytes, in TArgs args)
        where TArgs : unmanaged, IKernelArgs
    {
        int index = KernelCatalog.Index(KernelArgs<TArgs>.Kernel, type);
        nint f = _functions[index];
        if (f == 0)
            f = Resolve(index);
        if (_device.IsEmulated && !ReferenceEquals(_checkedSignatures[index], KernelArgs<TArgs>.Signature))
            CheckSignature(index, typeof(TArgs).Name, KernelArgs<TArgs>.Signature);
        _device.Launch(f, grid, block, sharedBytes, args, KernelCatalog.EntryPoint(index));
    }

    /// <summary>Use after dispose names the CudaOps the user holds, not this internal loader.</summary>
    private void ThrowIfDisposed()
    {
        if (_disposed)
            throw new ObjectDisposedException(nameof(CudaOps), $"the CudaOps of {_device.Name} were disposed: their kernel modules are unloaded");
    }

    private void CheckSignature(int index, string structName, string mine)
    {
        string name = KernelCatalog.EntryPoint(index);
        string? theirs = _device.EmulatedKernelSignature(name);
        if (theirs != mine)
            throw new InvalidOperationException(
                $"the launcher of {name} passes arguments {structName} ({mine}) that do not match the kernel's parameters ({theirs ?? "unknown kernel"}) " +
                "(p pointer, i int, u unsigned, f float, l/L 64-bit)");
        _checkedSignatures[index] = mine;
    }

    /// <summary>Entry points launched on the emulator so far, with the argument signature checked against the kernel.</summary>
    public IReadOnlyDictionary<string, string> CheckedSignatures =>
        Enumerable.Range(0, _checkedSignatures.Length).Where(i => _checkedSignatures[i] is not null)
            .ToDictionary(KernelCatalog.EntryPoint, i => _checkedSignatures[i]!);

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        foreach (var m in _modules)
            m?.Dispose();
        Array.Clear(_modules);
        Array.Clear(_functions);
    }
}

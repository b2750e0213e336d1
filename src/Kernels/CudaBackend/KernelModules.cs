using System.Security.Cryptography;
using System.Text;
using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;

namespace BlockDance.Kernels.Cuda;

/// <summary>One kernel source file of <c>src/Kernels/cuda/</c>, i.e. one CUDA module.</summary>
public enum KernelModule
{
    Linear,       // linear.cu      bias + activation epilogue
    Elementwise,  // elementwise.cu silu, add
    AdaLN,        // adaln.cu       layernorm_modulate, gated_residual_add
    Softmax,      // softmax.cu     attention softmax
    Patch,        // patch.cu       patchify, unpatchify
    Embedding,    // embedding.cu   add_position_embedding, timestep_embedding, embedding_lookup
    Sampling,     // sampling.cu    guidance_combine, ddim_step, ancestral_step
    Random,       // random.cu      random_normal
    Rearrange,    // rearrange.cu   swap_frame_token_axes (Latte)
}

/// <summary>A kernel family: one <c>extern "C"</c> entry point per storage type, named <c>{op}_{f32|f16|bf16}</c>.</summary>
internal enum Kernel
{
    BiasAct,
    Silu,
    Add,
    LayerNormModulate,
    GatedResidualAdd,
    Softmax,
    Patchify,
    Unpatchify,
    AddPositionEmbedding,
    TimestepEmbedding,
    EmbeddingLookup,
    GuidanceCombine,
    DdimStep,
    AncestralStep,
    RandomNormal,
    SwapFrameTokenAxes,
}

/// <summary>The kernel table: which module defines each kernel family, the entry-point names and the module sources.</summary>
internal static class KernelCatalog
{
    public static readonly DType[] Types = [DType.F32, DType.F16, DType.BF16];

    private static readonly (KernelModule Module, string Op)[] s_kernels =
    [
        (KernelModule.Linear, "bias_act"),
        (KernelModule.Elementwise, "silu"),
        (KernelModule.Elementwise, "add"),
        (KernelModule.AdaLN, "layernorm_modulate"),
        (KernelModule.AdaLN, "gated_residual_add"),
        (KernelModule.Softmax, "softmax"),
        (KernelModule.Patch, "patchify"),
        (KernelModule.Patch, "unpatchify"),
        (KernelModule.Embedding, "add_position_embedding"),
        (KernelModule.Embedding, "timestep_embedding"),
        (KernelModule.Embedding, "embedding_lookup"),
        (KernelModule.Sampling, "guidance_combine"),
        (KernelModule.Sampling, "ddim_step"),
        (KernelModule.Sampling, "ancestral_step"),
        (KernelModule.Random, "random_normal"),
        (KernelModule.Rearrange, "swap_frame_token_axes"),
    ];

    public static int KernelCount => s_kernels.Length;
    public static int ModuleCount => Enum.GetValues<KernelModule>().Length;

    public static KernelModule ModuleOf(Kernel kernel) => s_kernels[(int)kernel].Module;

    /// <summary>Index of (kernel, type) in per-function arrays.</summary>
    public static int Index(Kernel kernel, DType type) => (int)kernel * Types.Length + TypeIndex(type);

    public static int TypeIndex(DType type) => type switch
    {
        DType.F32 => 0,
        DType.F16 => 1,
        DType.BF16 => 2,
        _ => throw new ArgumentException($"CUDA kernels exist for F32, F16 and BF16, not {type}"),
    };

    /// <summary>The entry point, e.g. <c>layernorm_modulate_bf16</c>.</summary>
    public static string EntryPoint(Kernel kernel, DType type) => $"{s_kernels[(int)kernel].Op}_{type.ShortName()}";

    public static string EntryPoint(int index) => EntryPoint((Kernel)(index / Types.Length), Types[index % Types.Length]);

    /// <summary>Every entry point a module defines, in table order.</summary>
    public static IEnumerable<string> EntryPoints(KernelModule module) =>
        from k in Enum.GetValues<Kernel>()
        where ModuleOf(k) == module
        from t in Types
        select EntryPoint(k, t);

    public static string FileName(KernelModule module) => module.ToString().ToLowerInvariant() + ".cu";

    public static string Source(KernelModule module) => Resource(FileName(module));

    public static string Prelude => Resource("prelude.cuh");

    private static string Resource(string file)
    {
        string name = "BlockDance.Kernels.cuda." + file;
        using var stream = typeof(KernelCatalog).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"the kernel source {name} is not embedded in {typeof(KernelCatalog).Assembly.GetName().Name}");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    /// <summary>
    /// A PTX text that declares the module's entry points with empty bodies. The emulator runs its own g++ build of
    /// the kernels and only needs the names from the image, so this lets <c>cuda-emu</c> work without NVRTC.
    /// </summary>
    public static byte[] StubPtx(KernelModule module)
    {
        var sb = new StringBuilder(".version 7.8\n.target sm_90\n");
        foreach (string entry in EntryPoints(module))
            sb.Append(".entry ").Append(entry).Append("()\n{\n}\n");
        return Encoding.ASCII.GetBytes(sb.ToString());
    }
}

/// <summary>A compiled module image: a CUBIN (sm_XX) or PTX (compute_XX), and where it came from.</summary>
internal sealed record KernelImage(KernelModule Module, byte[] Bytes, bool IsCubin, string Architecture, string Key, KernelImageSource Source);

internal enum KernelImageSource
{
    Compiled,
    DiskCache,
    MemoryCache,
    EmulatorStub,
}

/// <summary>
/// Compiles kernel modules with NVRTC, with an on-disk cache. The cache key is the SHA-256 of (format version, source,
/// prelude, NVRTC options, architecture, NVRTC version); an entry is the file <c>{module}-{key}.{cubin|ptx}</c> whose
/// header holds a magic, the key and the SHA-256 of the image. An entry that cannot be read, is truncated, belongs to
/// another key or whose digest does not match is ignored and rewritten; entries are written to a temporary file and
/// renamed, so a concurrent reader never sees half a file. A cache directory that cannot be written only costs the
/// recompilation next time.
/// </summary>
internal sealed class KernelCompiler(NvrtcCompiler nvrtc, string? cacheDirectory)
{
    /// <summary>NVRTC options besides the architecture: the same as native/tests/nvrtc_compile_test.cpp. No fast math:
    /// the kernels use accurate expf/logf/sinf so that they agree with the CPU device.</summary>
    public static readonly IReadOnlyList<string> Options = ["--std=c++17"];

    private const string FormatVersion = "blockdance-kernel-cache-1";
    private static readonly byte[] s_magic = "BDKCACHE"u8.ToArray();
    private const int HeaderBytes = 8 + 1 + 32 + 32;   // magic, is-CUBIN, key, SHA-256 of the image

    public NvrtcCompiler Nvrtc { get; } = nvrtc;
    public string? CacheDirectory { get; } = cacheDirectory;

    private int _compilations;

    /// <summary>NVRTC compilations this compiler ran (cache misses); for tests.</summary>
    public int Compilations => Volatile.Read(ref _compilations);

    /// <summary><c>$XDG_CACHE_HOME/blockdance/kernels</c>, else <c>~/.cache/blockdance/kernels</c>; null without a home.</summary>
    public static string? DefaultCacheDirectory()
    {
        string? root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (string.IsNullOrEmpty(root) || !Path.IsPathRooted(root))
        {
            string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            if (string.IsNullOrEmpty(home))
                return null;
            root = Path.Combine(home, ".cache");
        }
        return Path.Combine(root, "blockdance", "kernels");
    }

    public string Key(KernelModule module, string architecture)
    {
        var text = new StringBuilder()
            .Append(FormatVersion).Append('\0')
            .Append(KernelCatalog.Source(module)).Append('\0')
            .Append(KernelCatalog.Prelude).Append('\0')
            .AppendJoin(' ', Options).Append('\0')
            .Append(architecture).Append('\0')
            .Append($"nvrtc {Nvrtc.Version.Major}.{Nvrtc.Version.Minor}");
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    public string? CachePath(KernelModule module, string architecture, string key) => CacheDirectory is null ? null
        : Path.Combine(CacheDirectory, $"{module.ToString().ToLowerInvariant()}-{key}.{(architecture.StartsWith("sm_", StringComparison.Ordinal) ? "cubin" : "ptx")}");

    /// <summary>The module's image for <paramref name="architecture"/>: from the disk cache when a valid entry exists,
    /// else compiled (and cached). A compile error throws <see cref="NvrtcException"/> with the full log.</summary>
    public KernelImage Get(KernelModule module, string architecture, bool bypassCache = false)
    {
        string key = Key(module, architecture);
        string? path = CachePath(module, architecture, key);
        if (!bypassCache && path is not null && TryRead(path, key) is { } cached)
            return new KernelImage(module, cached.Bytes, cached.IsCubin, architecture, key, KernelImageSource.DiskCache);
        var compiled = Nvrtc.Compile(KernelCatalog.Source(module), KernelCatalog.FileName(module),
            [("prelude.cuh", KernelCatalog.Prelude)], architecture, Options);
        Interlocked.Increment(ref _compilations);
        if (path is not null)
            TryWrite(path, key, compiled.Image, compiled.IsCubin);
        return new KernelImage(module, compiled.Image, compiled.IsCubin, architecture, key, KernelImageSource.Compiled);
    }

    /// <summary>Deletes a cache entry (used when a cached image fails to load).</summary>
    public void Evict(KernelImage image)
    {
        if (CachePath(image.Module, image.Architecture, image.Key) is { } path)
        {
            try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static (byte[] Bytes, bool IsCubin)? TryRead(string path, string key)
    {
        byte[] file;
        try
        {
            if (!File.Exists(path))
                return null;
            file = File.ReadAllBytes(path);
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
        if (file.Length <= HeaderBytes || !file.AsSpan(0, 8).SequenceEqual(s_magic) || file[8] > 1)
            return null;
        if (!file.AsSpan(9, 32).SequenceEqual(Convert.FromHexString(key)))
            return null;
        var image = file.AsSpan(HeaderBytes);
        if (!SHA256.HashData(image).AsSpan().SequenceEqual(file.AsSpan(41, 32)))
            return null;
        return (image.ToArray(), file[8] == 1);
    }

    private static void TryWrite(string path, string key, byte[] image, bool isCubin)
    {
        string temp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            using (var f = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            {
                f.Write(s_magic);
                f.WriteByte(isCubin ? (byte)1 : (byte)0);
                f.Write(Convert.FromHexString(key));
                f.Write(SHA256.HashData(image));
                f.Write(image);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}

/// <summary>
/// The kernel modules of one <see cref="CudaDevice"/>, loaded lazily: the first launch of a kernel compiles its module
/// with NVRTC for <see cref="NvrtcCompiler.ArchitectureFor"/> the device (sm_90 on the emulator → CUBIN), or takes it
/// from the in-process or on-disk cache, loads it with <see cref="CudaModule"/> and looks up the function; later
/// launches read the cached CUfunction from an array. On the emulator without NVRTC a stub PTX naming the entry points
/// is loaded instead (the emulator runs its g++ build of the same sources); on a GPU without NVRTC loading fails with a
/// message saying what to install.
/// </summary>
internal sealed unsafe class KernelModules : IDisposable
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
    public KernelModules(CudaDevice device) : this(device, s_defaultCompiler.Value, useProcessCache: true)
    {
    }

    /// <param name="compiler">null: no NVRTC (stub PTX on the emulator, an error on a GPU).</param>
    /// <param name="useProcessCache">Share compiled images with the other devices of this process.</param>
    public KernelModules(CudaDevice device, KernelCompiler? compiler, bool useProcessCache = false)
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

    /// <summary>The CUfunction of an entry point, loading its module on first use.</summary>
    public nint Function(Kernel kernel, DType type)
    {
        int index = KernelCatalog.Index(kernel, type);
        nint f = _functions[index];
        return f != 0 ? f : Resolve(kernel, type, index);
    }

    private nint Resolve(Kernel kernel, DType type, int index)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var module = Module(KernelCatalog.ModuleOf(kernel));
        return _functions[index] = module.Function(KernelCatalog.EntryPoint(kernel, type));
    }

    /// <summary>Loads (once) and returns a module.</summary>
    public CudaModule Module(KernelModule module)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
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
    /// Launches a kernel on the device's stream: <paramref name="args"/> holds the addresses of the launcher's locals
    /// (cuLaunchKernel's kernelParams). On the emulator the first launch of each entry point also checks that the
    /// types of those locals match the kernel's parameters (the emulator knows them from the g++ build).
    /// </summary>
    public void Launch(Kernel kernel, DType type, uint grid, uint block, uint sharedBytes, in KernelArgs args)
    {
        int index = KernelCatalog.Index(kernel, type);
        nint f = _functions[index];
        if (f == 0)
            f = Resolve(kernel, type, index);
        if (_checkedSignatures[index] is null && _device.Emulator is { } emulator)
            CheckSignature(emulator, index, args);
        _device.MakeCurrent();
        // SAFETY: args.Slots holds args.Count addresses of the caller's live locals (KernelArgs throws unless every
        // slot was set); the driver reads the values during this call and keeps no pointer to them.
        int r = _device.Api.cuLaunchKernel(f, grid, 1, 1, block, 1, 1, sharedBytes, _device.Stream, args.Slots, null);
        if (r != 0)
            _device.Check(r, $"cuLaunchKernel({KernelCatalog.EntryPoint(index)}, grid {grid}, block {block}, {sharedBytes} B shared)");
    }

    private void CheckSignature(EmulatorControl emulator, int index, in KernelArgs args)
    {
        string name = KernelCatalog.EntryPoint(index);
        string mine = args.Signature;
        string? theirs = emulator.KernelSignature(name);
        if (theirs != mine)
            throw new InvalidOperationException(
                $"the launcher of {name} passes arguments ({mine}) that do not match the kernel's parameters ({theirs ?? "unknown kernel"}) " +
                "(p pointer, i int, f float, L 64-bit unsigned)");
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

/// <summary>
/// The parameter block of one launch: <c>cuLaunchKernel</c>'s <c>kernelParams</c> (addresses of the launcher's locals,
/// in a <c>stackalloc</c>'d <c>void*</c> array) and one emulator signature letter per argument, taken from the static
/// type of each local (nint = pointer 'p', int 'i', float 'f', ulong 'L'), so that a launcher whose locals disagree
/// with the kernel's parameters is caught on the emulator. Lives on the stack; allocates nothing.
/// </summary>
internal unsafe ref struct KernelArgs
{
    private readonly void** _slots;
    private readonly byte* _letters;
    private readonly int _capacity;
    private int _count;

    // SAFETY: slots and letters must point at stack memory of at least `capacity` entries that outlives this value
    // (the launcher's own stackalloc); Put never writes past `capacity`.
    /// <param name="slots">stackalloc void*[capacity]</param>
    /// <param name="letters">stackalloc byte[capacity]</param>
    public KernelArgs(void** slots, byte* letters, int capacity)
    {
        _slots = slots;
        _letters = letters;
        _capacity = capacity;
    }

    public readonly void** Slots => _count == _capacity ? _slots
        : throw new InvalidOperationException($"kernel launch with {_count} of {_capacity} arguments set");

    public readonly string Signature => Encoding.ASCII.GetString(_letters, _count);

    /// <summary>A device pointer (CUdeviceptr / T*): the address of an <c>nint</c> local.</summary>
    public void Add(nint* devicePointer) => Put(devicePointer, (byte)'p');

    public void Add(int* value) => Put(value, (byte)'i');

    public void Add(float* value) => Put(value, (byte)'f');

    public void Add(ulong* value) => Put(value, (byte)'L');

    private void Put(void* address, byte letter)
    {
        if (_count >= _capacity)
            throw new InvalidOperationException($"kernel launch with more than {_capacity} arguments");
        _slots[_count] = address;
        _letters[_count] = letter;
        _count++;
    }
}

using System.Security.Cryptography;
using System.Text;
using BlockDance.Runtime.Cuda;

namespace BlockDance.Kernels.Cuda;

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
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            Runtime.IO.AtomicFile.Write(path, f =>
            {
                f.Write(s_magic);
                f.WriteByte(isCubin ? (byte)1 : (byte)0);
                f.Write(Convert.FromHexString(key));
                f.Write(SHA256.HashData(image));
                f.Write(image);
            });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The cache is an optimisation: a file that cannot be written is compiled again next time.
        }
    }
}

using System.Runtime.InteropServices;

namespace BlockDance.Runtime.Cuda.Native;

/// <summary>A loaded shared library from which entry points are resolved by exact export name.</summary>
internal sealed class NativeLibraryHandle
{
    private NativeLibraryHandle(nint handle, string path)
    {
        Handle = handle;
        Path = path;
    }

    public nint Handle { get; }
    public string Path { get; }

    /// <summary>Loads the first library of <paramref name="candidates"/> that exists; null when none does.</summary>
    public static NativeLibraryHandle? TryLoad(IEnumerable<string> candidates, out string tried)
    {
        var names = candidates.ToList();
        tried = string.Join(", ", names);
        foreach (string name in names)
            if (NativeLibrary.TryLoad(name, out nint handle))
                return new NativeLibraryHandle(handle, name);
        return null;
    }

    /// <summary>The address of <paramref name="symbol"/>; a missing export is an error naming library and symbol.</summary>
    public nint Export(string symbol) =>
        NativeLibrary.TryGetExport(Handle, symbol, out nint address) ? address
            : throw new EntryPointNotFoundException($"{Path} does not export '{symbol}'");

    public nint TryExport(string symbol) => NativeLibrary.TryGetExport(Handle, symbol, out nint address) ? address : 0;
}

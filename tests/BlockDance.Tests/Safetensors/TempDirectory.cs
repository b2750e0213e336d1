namespace BlockDance.Tests.Safetensors;

/// <summary>A fresh directory under the system temp folder, deleted with everything in it on Dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory() => Path = Directory.CreateTempSubdirectory("blockdance-safetensors-").FullName;

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Names of the files in the directory, sorted (to prove that nothing else, e.g. a temp file, was left).</summary>
    public string[] FileNames() =>
        Directory.GetFileSystemEntries(Path).Select(p => System.IO.Path.GetFileName(p)!).Order(StringComparer.Ordinal).ToArray();

    /// <summary>Writes <paramref name="bytes"/> to a file called <paramref name="name"/> and returns its path.</summary>
    public string Write(string name, byte[] bytes)
    {
        string path = File(name);
        System.IO.File.WriteAllBytes(path, bytes);
        return path;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

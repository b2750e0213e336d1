namespace BlockDance.Tests;

/// <summary>Files under tests/fixtures (copied next to the test assembly), written by tools/make_fixtures.py.</summary>
public static class Fixtures
{
    public static string Path(string name)
    {
        string p = System.IO.Path.Combine(AppContext.BaseDirectory, "fixtures", name);
        return File.Exists(p) ? p : throw new FileNotFoundException(
            $"fixture '{name}' is missing; regenerate the fixtures with '/usr/bin/python3 tools/make_fixtures.py'", p);
    }

    public static string TinyOriginal => Path("dit_tiny_original.safetensors");
    public static string TinyDiffusers => Path("dit_tiny_diffusers.safetensors");

    /// <summary>A fresh temporary directory, deleted on dispose.</summary>
    public sealed class TempDir : IDisposable
    {
        public TempDir() => Directory.CreateDirectory(Root);

        public string Root { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "blockdance-test-" + Guid.NewGuid().ToString("N")[..12]);

        public string File(string name) => System.IO.Path.Combine(Root, name);

        public void Dispose()
        {
            try { Directory.Delete(Root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}

using System.Text.Json;

namespace BlockDance.Tests.Metrics;

/// <summary>The SSIM/PSNR reference fixture written by tools/ssim_reference.py, and a scratch directory.</summary>
internal static class MetricsFiles
{
    public const string ReferenceFormat = "blockdance.ssim_reference/1";

    public static string Fixture(string name)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "fixtures", name);
        return File.Exists(path) ? path : throw new FileNotFoundException(
            $"fixture '{name}' is missing; regenerate it with '/usr/bin/python3 tools/ssim_reference.py'", path);
    }

    /// <summary>One image of the fixture, [C, H, W] float32.</summary>
    public sealed record Image(string Name, int[] Shape, float[] Data)
    {
        public int Channels => Shape[0];
        public int Height => Shape[1];
        public int Width => Shape[2];
    }

    /// <summary>One pair with scikit-image's values.</summary>
    public sealed record Case(string A, string B, double DataRange, double Ssim, double Psnr, double RelL2)
    {
        public override string ToString() => $"{A} vs {B} (R = {DataRange})";
    }

    public sealed record Reference(IReadOnlyDictionary<string, Image> Images, IReadOnlyList<Case> Cases);

    private static readonly Lazy<Reference> Loaded = new(Load);

    public static Reference SsimReference => Loaded.Value;

    private static Reference Load()
    {
        string path = Fixture("ssim_reference.json");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = doc.RootElement;
        string format = root.GetProperty("format").GetString() ?? "";
        if (format != ReferenceFormat)
            throw new InvalidDataException($"{path}: format '{format}', expected '{ReferenceFormat}'; re-run '/usr/bin/python3 tools/ssim_reference.py'");
        var images = new Dictionary<string, Image>(StringComparer.Ordinal);
        foreach (var entry in root.GetProperty("images").EnumerateObject())
        {
            int[] shape = entry.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            byte[] bytes = Convert.FromBase64String(entry.Value.GetProperty("data").GetString()!);
            var data = new float[bytes.Length / 4];
            Buffer.BlockCopy(bytes, 0, data, 0, bytes.Length); // little-endian host, like the file
            if (data.Length != shape.Aggregate(1, (a, b) => a * b))
                throw new InvalidDataException($"{path}: image '{entry.Name}' has {data.Length} values for shape [{string.Join(", ", shape)}]");
            images[entry.Name] = new Image(entry.Name, shape, data);
        }
        var cases = root.GetProperty("cases").EnumerateArray().Select(c => new Case(
            c.GetProperty("a").GetString()!, c.GetProperty("b").GetString()!, c.GetProperty("data_range").GetDouble(),
            c.GetProperty("ssim").GetDouble(), c.GetProperty("psnr").GetDouble(), c.GetProperty("rel_l2").GetDouble())).ToList();
        return new Reference(images, cases);
    }

    /// <summary>A fresh directory under the system temp folder, deleted with everything in it on Dispose.</summary>
    public sealed class Scratch : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("blockdance-metrics-").FullName;

        public string File(string name) => System.IO.Path.Combine(Path, name);

        /// <summary>Names of the entries in the directory, sorted (to prove that no temporary file was left).</summary>
        public string[] Entries() =>
            Directory.GetFileSystemEntries(Path).Select(p => System.IO.Path.GetFileName(p)!).Order(StringComparer.Ordinal).ToArray();

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
}

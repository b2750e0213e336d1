using System.Diagnostics;
using System.IO.Compression;
using System.Xml.Linq;

namespace BlockDance.Tests.Packaging;

/// <summary>
/// The packages of the repository, as <c>dotnet pack</c> at the root writes them to artifacts/packages. ./test.sh packs
/// before the .NET tests run; when the folder lacks a package, or a packaging input (props, project files, the package
/// readme, the model) is newer than a package, the packages are packed here once, with the same command.
/// </summary>
internal static class PackedPackages
{
    public static readonly string[] LibraryIds = ["BlockDance.Runtime", "BlockDance.Kernels", "BlockDance.Dit"];
    public const string ModelId = "BlockDance.Models.Shapes";

    private static readonly Lazy<string> s_folder = new(Pack, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The repository root: the nearest parent of the test assembly's folder that holds BlockDance.sln.</summary>
    public static string RepoRoot { get; } = FindRoot();

    /// <summary>The version in eng/Version.props, read independently of MSBuild.</summary>
    public static string Version { get; } =
        XDocument.Load(Path.Combine(RepoRoot, "eng", "Version.props")).Descendants("BlockDanceVersion").Single().Value.Trim();

    public static string Folder => s_folder.Value;

    public static string PackagePath(string id, string extension = "nupkg") => Path.Combine(Folder, $"{id}.{Version}.{extension}");

    /// <summary>The nuspec of a package, namespace removed so that elements are found by their local names.</summary>
    public static XElement Nuspec(string id)
    {
        using var zip = ZipFile.OpenRead(PackagePath(id));
        var entry = zip.Entries.Single(e => e.FullName == id + ".nuspec");
        using var stream = entry.Open();
        var root = XDocument.Load(stream).Root!;
        foreach (var e in root.DescendantsAndSelf())
            e.Name = e.Name.LocalName;
        return root.Element("metadata")!;
    }

    public static string[] Entries(string id, string extension = "nupkg")
    {
        using var zip = ZipFile.OpenRead(PackagePath(id, extension));
        return zip.Entries.Select(e => e.FullName).ToArray();
    }

    public static byte[] Read(string id, string entryName)
    {
        using var zip = ZipFile.OpenRead(PackagePath(id));
        using var stream = zip.GetEntry(entryName)?.Open() ?? throw new FileNotFoundException($"{id}: no entry {entryName}");
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return memory.ToArray();
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "BlockDance.sln")))
                return dir.FullName;
        throw new DirectoryNotFoundException($"no BlockDance.sln above {AppContext.BaseDirectory}");
    }

    private static string Pack()
    {
        string folder = Path.Combine(RepoRoot, "artifacts", "packages");
        if (IsCurrent(folder))
            return folder;
        var psi = new ProcessStartInfo("dotnet", ["pack", "BlockDance.sln", "-c", "Release"])
        {
            WorkingDirectory = RepoRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(psi)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("dotnet pack took more than 10 minutes");
        }
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"dotnet pack failed ({process.ExitCode}):\n{stdout}\n{stderr.Result}");
        return folder;
    }

    private static bool IsCurrent(string folder)
    {
        var packages = LibraryIds.Append(ModelId).Select(id => new FileInfo(Path.Combine(folder, $"{id}.{Version}.nupkg"))).ToArray();
        if (packages.Any(p => !p.Exists))
            return false;
        DateTime oldest = packages.Min(p => p.LastWriteTimeUtc);
        string[] inputs =
        [
            "Directory.Build.props", "Directory.Packages.props", Path.Combine("eng", "Version.props"), Path.Combine("src", "PACKAGE.md"),
            Path.Combine("models", "dit-shapes-32.safetensors"), Path.Combine("models", "README.md"),
            .. Directory.GetFiles(Path.Combine(RepoRoot, "src"), "*.csproj", SearchOption.AllDirectories),
            .. Directory.GetFiles(Path.Combine(RepoRoot, "src", "Models.Shapes"), "*.props", SearchOption.AllDirectories),
        ];
        return inputs.All(f => File.GetLastWriteTimeUtc(Path.Combine(RepoRoot, f)) <= oldest);
    }
}

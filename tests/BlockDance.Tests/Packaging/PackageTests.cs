using System.Security.Cryptography;
using System.Xml.Linq;
using Xunit;

namespace BlockDance.Tests.Packaging;

/// <summary>What `dotnet pack` at the root writes: metadata, readme, docs, symbols, dependencies, the model package.</summary>
public sealed class PackageTests
{
    [Fact]
    public void The_root_pack_writes_exactly_the_library_and_model_packages_and_their_symbols()
    {
        var names = Directory.GetFiles(PackedPackages.Folder).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        string v = PackedPackages.Version;
        string[] expected =
        [
            $"BlockDance.Dit.{v}.nupkg", $"BlockDance.Dit.{v}.snupkg",
            $"BlockDance.Kernels.{v}.nupkg", $"BlockDance.Kernels.{v}.snupkg",
            $"BlockDance.Models.Shapes.{v}.nupkg",
            $"BlockDance.Runtime.{v}.nupkg", $"BlockDance.Runtime.{v}.snupkg",
        ];
        Assert.Equal(expected, names);   // no Cli, no tests, no stray versions
    }

    [Theory]
    [InlineData("BlockDance.Runtime")]
    [InlineData("BlockDance.Kernels")]
    [InlineData("BlockDance.Dit")]
    public void A_library_package_has_its_metadata_readme_docs_and_symbols(string id)
    {
        var meta = PackedPackages.Nuspec(id);
        Assert.Equal(id, meta.Element("id")?.Value);
        Assert.Equal(PackedPackages.Version, meta.Element("version")?.Value);
        var license = meta.Element("license");
        Assert.Equal("expression", license?.Attribute("type")?.Value);
        Assert.Equal("MIT", license?.Value);
        string description = meta.Element("description")?.Value ?? "";
        Assert.NotEqual("Package Description", description);   // the SDK's placeholder
        Assert.True(description.Length >= 60, $"{id}: description '{description}' is too short to say what the package is");
        Assert.False(string.IsNullOrWhiteSpace(meta.Element("authors")?.Value));
        Assert.Contains("diffusion", meta.Element("tags")?.Value ?? "", StringComparison.Ordinal);
        Assert.Equal("git", meta.Element("repository")?.Attribute("type")?.Value);

        Assert.Equal("README.md", meta.Element("readme")?.Value);
        string readme = System.Text.Encoding.UTF8.GetString(PackedPackages.Read(id, "README.md"));
        Assert.Contains("dotnet add package BlockDance.Dit", readme, StringComparison.Ordinal);
        Assert.Contains("libopenblas0-pthread", readme, StringComparison.Ordinal);
        Assert.Contains("DitPipeline.OpenBundled", readme, StringComparison.Ordinal);

        var entries = PackedPackages.Entries(id);
        Assert.Contains($"lib/net10.0/{id}.dll", entries);
        Assert.Contains($"lib/net10.0/{id}.xml", entries);   // XML docs for IntelliSense
        var docs = XDocument.Parse(System.Text.Encoding.UTF8.GetString(PackedPackages.Read(id, $"lib/net10.0/{id}.xml")));
        Assert.True(docs.Descendants("member").Count() > 10, $"{id}: the XML doc file documents almost nothing");
        Assert.DoesNotContain(entries, e => e.EndsWith(".pdb", StringComparison.Ordinal));   // symbols go to the snupkg

        Assert.Contains($"lib/net10.0/{id}.pdb", PackedPackages.Entries(id, "snupkg"));
    }

    [Theory]
    [InlineData("BlockDance.Runtime", new string[0])]
    [InlineData("BlockDance.Kernels", new[] { "BlockDance.Runtime", "System.Numerics.Tensors" })]
    [InlineData("BlockDance.Dit", new[] { "BlockDance.Kernels" })]
    public void A_library_package_depends_on_the_layer_below_at_the_same_version(string id, string[] dependencies)
    {
        var groups = PackedPackages.Nuspec(id).Element("dependencies")?.Elements("group").ToArray() ?? [];
        Assert.All(groups, g => Assert.Equal("net10.0", g.Attribute("targetFramework")?.Value));
        var deps = groups.SelectMany(g => g.Elements("dependency"))
            .ToDictionary(d => d.Attribute("id")!.Value, d => d.Attribute("version")!.Value);
        Assert.Equal(dependencies.Order(StringComparer.Ordinal), deps.Keys.Order(StringComparer.Ordinal));
        foreach (var (dep, version) in deps)
            if (dep.StartsWith("BlockDance.", StringComparison.Ordinal))
                Assert.Equal(PackedPackages.Version, version);
    }

    [Fact]
    public void The_model_package_holds_the_bundled_model_and_its_Ada_network_and_copies_them_to_models_in_the_app_output()
    {
        const string id = PackedPackages.ModelId;
        var meta = PackedPackages.Nuspec(id);
        Assert.Equal(id, meta.Element("id")?.Value);
        Assert.Equal(PackedPackages.Version, meta.Element("version")?.Value);
        Assert.Equal("MIT", meta.Element("license")?.Value);
        Assert.Equal("README.md", meta.Element("readme")?.Value);
        Assert.Null(meta.Element("dependencies"));   // data only: no code, no dependencies
        var entries = PackedPackages.Entries(id);
        Assert.DoesNotContain(entries, e => e.StartsWith("lib/", StringComparison.Ordinal));

        // The same bytes as the repository's model and its BlockDance-Ada network.
        string[] files = ["dit-shapes-32.safetensors", "ada-dit-shapes-32.safetensors"];
        foreach (string file in files)
        {
            byte[] packed = PackedPackages.Read(id, "models/" + file);
            byte[] original = File.ReadAllBytes(Path.Combine(PackedPackages.RepoRoot, "models", file));
            Assert.Equal(SHA256.HashData(original), SHA256.HashData(packed));
        }
        string card = System.Text.Encoding.UTF8.GetString(PackedPackages.Read(id, "README.md"));
        Assert.Contains("dit-shapes-32: model card", card, StringComparison.Ordinal);

        // build/ and buildTransitive/ props (named after the package, so NuGet imports them) copy those entries to
        // models/ in the output folder: {AppContext.BaseDirectory}/models/, where the pipeline and the ada policy look.
        foreach (string folder in new[] { "build", "buildTransitive" })
        {
            string propsName = $"{folder}/{id}.props";
            Assert.Contains(propsName, entries);
            var items = XDocument.Parse(System.Text.Encoding.UTF8.GetString(PackedPackages.Read(id, propsName)))
                .Descendants().Where(e => e.Name.LocalName == "None").ToArray();
            Assert.Equal(files.Length, items.Length);
            foreach (var (item, file) in items.Zip(files))
            {
                string include = item.Attribute("Include")!.Value.Replace("$(MSBuildThisFileDirectory)", folder + "/", StringComparison.Ordinal);
                string resolved = Path.GetRelativePath("/pkg", Path.GetFullPath(include, "/pkg")).Replace('\\', '/');
                Assert.Equal("models/" + file, resolved);
                Assert.Contains(resolved, entries);
                Assert.Equal("models/" + file, item.Attribute("Link")?.Value);
                Assert.Equal("PreserveNewest", item.Attribute("CopyToOutputDirectory")?.Value);
            }
        }
    }
}

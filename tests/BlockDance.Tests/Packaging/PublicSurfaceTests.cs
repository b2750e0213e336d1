using System.Reflection;
using BlockDance.Dit;
using BlockDance.Kernels;
using BlockDance.Runtime;
using Xunit;

namespace BlockDance.Tests.Packaging;

/// <summary>The packages' public surface is deliberate: the helpers below stay internal.</summary>
public sealed class PublicSurfaceTests
{
    private static readonly Assembly[] Libraries = [typeof(Tensor).Assembly, typeof(IOps).Assembly, typeof(DitModel).Assembly];

    /// <summary>Types a package user should not call: file and image plumbing, parsers, native bindings, emulator
    /// control, kernel launch details, schedules and other implementation helpers.</summary>
    private static readonly string[] Helpers =
    [
        // Runtime
        "Crc32", "AtomicFile", "AtomicFileWriter", "FileKind", "FileKinds", "NumericConversions", "Png", "ImageGrid", "SafetensorsHeaderParser", "SafetensorsFormat",
        "SafetensorsStreamWriter", "EmulatorControl", "EmulatorCounters",
        "CudaDriverApi", "CublasApi", "NvrtcApi", "NativeLibraryHandle", "CudaLibraries",
        // Kernels
        "SgemmBaseline", "OpenBlas", "CpuParallel", "CpuAttention", "CpuMath", "Check", "Philox", "Backends",
        "ProfilingOps", "PtxasReport", "PtxasEntry", "KernelModule", "KernelLoader", "KernelCompiler", "KernelCatalog",
        // Dit
        "PositionEmbedding", "NonFinite", "FeatureCache", "ExpectedTensor", "WeightLoader", "RespacedDiffusion",
        "LeadingDdimSchedule",
    ];

    [Fact]
    public void No_helper_is_public()
    {
        var publicHelpers = Libraries.SelectMany(a => a.GetExportedTypes())
            .Where(t => Helpers.Contains(t.Name))
            .Select(t => $"{t.Assembly.GetName().Name}: {t.FullName}")
            .ToArray();
        Assert.True(publicHelpers.Length == 0, "public helpers (make them internal): " + string.Join(", ", publicHelpers));
    }

    [Fact]
    public void Every_listed_helper_exists_so_that_the_check_above_checks_something()
    {
        var all = Libraries.SelectMany(a => a.GetTypes()).Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var missing = Helpers.Where(h => !all.Contains(h)).ToArray();
        Assert.True(missing.Length == 0, "helpers not found (renamed? update the list): " + string.Join(", ", missing));
    }
}

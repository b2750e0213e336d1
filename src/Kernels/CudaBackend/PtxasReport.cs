using System.Globalization;
using System.Text.RegularExpressions;
using BlockDance.Runtime.Cuda;

namespace BlockDance.Kernels.Cuda;

/// <summary>ptxas's resource use of one kernel for one architecture (from <c>--ptxas-options=-v</c>).</summary>
internal sealed record PtxasEntry(string Kernel, string Architecture, int Registers, int SharedBytes, int StackBytes, int SpillStoreBytes, int SpillLoadBytes);

/// <summary>
/// Compiles every kernel module with NVRTC and <c>--ptxas-options=-v</c> for a real architecture and reads the
/// registers, static shared memory, stack frame and spills ptxas reports for each entry point. Used by a test (no
/// spills on sm_80 and sm_90) and by <c>blockdance bench ptxas</c>, which writes the table to bench/results/.
/// </summary>
internal static partial class PtxasReport
{
    public static IReadOnlyList<PtxasEntry> Collect(NvrtcCompiler nvrtc, string architecture)
    {
        var result = new List<PtxasEntry>();
        foreach (var module in Enum.GetValues<KernelModule>())
        {
            var image = nvrtc.Compile(KernelCatalog.Source(module), KernelCatalog.FileName(module), [("prelude.cuh", KernelCatalog.Prelude)],
                architecture, [.. KernelCompiler.Options, "--ptxas-options=-v"]);
            result.AddRange(Parse(image.Log, architecture));
        }
        return result;
    }

    /// <summary>Reads ptxas's verbose log: "Function properties for K" / "N bytes stack frame, N bytes spill stores, N bytes spill loads" / "Used N registers, N bytes smem".</summary>
    public static IEnumerable<PtxasEntry> Parse(string log, string architecture)
    {
        string? kernel = null;
        int stack = 0, stores = 0, loads = 0;
        foreach (string line in log.Split('\n'))
        {
            if (Compiling().Match(line) is { Success: true } c)
            {
                kernel = c.Groups[1].Value;
                stack = stores = loads = 0;
            }
            else if (Frame().Match(line) is { Success: true } f)
            {
                stack = Int(f.Groups[1]);
                stores = Int(f.Groups[2]);
                loads = Int(f.Groups[3]);
            }
            else if (kernel is not null && Used().Match(line) is { Success: true } u)
            {
                int smem = Smem().Match(line) is { Success: true } s ? Int(s.Groups[1]) : 0;
                yield return new PtxasEntry(kernel, architecture, Int(u.Groups[1]), smem, stack, stores, loads);
                kernel = null;
            }
        }
    }

    private static int Int(Group g) => int.Parse(g.Value, CultureInfo.InvariantCulture);

    [GeneratedRegex(@"Compiling entry function '([^']+)'")]
    private static partial Regex Compiling();

    [GeneratedRegex(@"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")]
    private static partial Regex Frame();

    [GeneratedRegex(@"Used (\d+) registers")]
    private static partial Regex Used();

    [GeneratedRegex(@"(\d+) bytes smem")]
    private static partial Regex Smem();
}

using System.Reflection;
using System.Runtime.InteropServices;

namespace BlockDance.Kernels.Cpu;

/// <summary>
/// The two OpenBLAS entry points the CPU device uses, bound by P/Invoke. The library is resolved once, trying the
/// SONAMEs Debian installs (<c>libopenblas.so.0</c>, then the <c>libblas.so.3</c> alternative, which Debian points at
/// OpenBLAS when it is installed); a missing library becomes a <see cref="Runtime.DeviceException"/> (from
/// <see cref="EnsureLoaded"/>) that says how to install it.
/// </summary>
internal static unsafe partial class OpenBlas
{
    private const string Library = "blockdance-openblas";

    public const int RowMajor = 101;
    public const int NoTrans = 111;
    public const int Trans = 112;

    /// <summary>The Debian package that provides <c>libopenblas.so.0</c> (the same one eng/install-deps.sh installs).</summary>
    internal const string DebianPackage = "libopenblas0-pthread";

    private static readonly string[] Candidates = ["libopenblas.so.0", "libopenblas.so", "libblas.so.3"];

    static OpenBlas() => NativeLibrary.SetDllImportResolver(typeof(OpenBlas).Assembly, Resolve);

    private static nint Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (name != Library)
            return 0;
        foreach (string candidate in Candidates)
            if (NativeLibrary.TryLoad(candidate, out nint handle) && NativeLibrary.TryGetExport(handle, "cblas_sgemm", out _)
                && NativeLibrary.TryGetExport(handle, "openblas_set_num_threads", out _))
                return handle;   // libblas.so.3 may be another BLAS (reference, BLIS): only OpenBLAS has both
        throw new DllNotFoundException(MissingMessage);
    }

    /// <summary>The error when no candidate loads: what was tried and which package to install.</summary>
    internal static string MissingMessage =>
        "OpenBLAS was not found (tried " + string.Join(", ", Candidates) + "). The CPU device needs it for matrix "
        + "products: install it with 'sudo apt-get install " + DebianPackage + "' (Debian/Ubuntu) or your system's OpenBLAS package.";

    /// <summary>The first candidate library name, the one Debian's <see cref="DebianPackage"/> provides.</summary>
    internal static string PrimaryLibrary => Candidates[0];

    /// <summary>Forces the library to load now, so that a missing OpenBLAS is reported before any work starts.</summary>
    public static void EnsureLoaded()
    {
        try
        {
            openblas_get_num_threads();
        }
        catch (DllNotFoundException e)
        {
            throw new Runtime.DeviceException(e.Message, e);
        }
    }

    [LibraryImport(Library)]
    public static partial void cblas_sgemm(int order, int transA, int transB, int m, int n, int k,
        float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc);

    [LibraryImport(Library)]
    public static partial void openblas_set_num_threads(int threads);

    [LibraryImport(Library)]
    public static partial int openblas_get_num_threads();
}

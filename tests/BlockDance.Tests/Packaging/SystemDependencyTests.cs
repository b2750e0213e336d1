using System.Diagnostics;
using BlockDance.Kernels.Cpu;
using Xunit;

namespace BlockDance.Tests.Packaging;

/// <summary>OpenBLAS stays a system dependency: the error when it is missing names the Debian package to install.</summary>
public sealed class SystemDependencyTests
{
    [Fact]
    public void The_missing_OpenBLAS_error_says_which_package_to_install()
    {
        Assert.Contains("apt-get install libopenblas0-pthread", OpenBlas.MissingMessage, StringComparison.Ordinal);
        Assert.Contains(OpenBlas.PrimaryLibrary, OpenBlas.MissingMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void The_package_the_error_names_is_the_one_that_owns_the_library_loaded()
    {
        string? path = new[] { "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib/x86_64-linux-gnu" }
            .Select(d => Path.Combine(d, OpenBlas.PrimaryLibrary)).FirstOrDefault(File.Exists);
        Assert.SkipWhen(path is null || !File.Exists("/usr/bin/dpkg"), "not a Debian system with OpenBLAS installed");
        // Debian installs libopenblas.so.0 as an alternatives link: dpkg owns the file it resolves to.
        string real = new FileInfo(path!).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? path!;
        var psi = new ProcessStartInfo("/usr/bin/dpkg", ["-S", real]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(psi)!;
        string owner = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.Equal(0, process.ExitCode);
        Assert.StartsWith(OpenBlas.DebianPackage + ":", owner, StringComparison.Ordinal);
    }
}

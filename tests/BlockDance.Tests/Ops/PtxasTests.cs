using BlockDance.Kernels.Cuda;
using BlockDance.Runtime.Cuda;
using Xunit;

namespace BlockDance.Tests.Ops;

/// <summary>Every kernel compiles with NVRTC for sm_80 and sm_90 and ptxas reports no register spills.</summary>
public sealed class PtxasTests
{
    [Theory]
    [InlineData("sm_80")]
    [InlineData("sm_90")]
    public void Every_kernel_compiles_without_spills(string architecture)
    {
        var nvrtc = NvrtcCompiler.TryLoad();
        if (nvrtc is null)
            Assert.Skip("NVRTC is not installed (eng/install-deps.sh test installs Debian's libnvrtc11.2)");
        var entries = PtxasReport.Collect(nvrtc, architecture);
        Assert.Equal(KernelCatalog.KernelCount * KernelCatalog.Types.Length, entries.Count);
        Assert.All(entries, e => Assert.True(e.SpillStoreBytes == 0 && e.SpillLoadBytes == 0,
            $"{e.Kernel} on {e.Architecture} spills {e.SpillStoreBytes} B stores / {e.SpillLoadBytes} B loads ({e.Registers} registers)"));
        Assert.All(entries, e => Assert.InRange(e.Registers, 1, 255));
    }

    [Fact]
    public void The_ptxas_log_is_parsed()
    {
        const string log = """
            ptxas info    : 0 bytes gmem
            ptxas info    : Compiling entry function 'softmax_f32' for 'sm_90'
            ptxas info    : Function properties for softmax_f32
                16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
            ptxas info    : Used 24 registers, 128 bytes smem, 384 bytes cmem[0]
            """;
        var e = Assert.Single(PtxasReport.Parse(log, "sm_90"));
        Assert.Equal(new PtxasEntry("softmax_f32", "sm_90", 24, 128, 16, 8, 4), e);
    }
}

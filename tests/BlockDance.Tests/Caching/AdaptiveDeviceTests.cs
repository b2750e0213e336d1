using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Kernels;
using BlockDance.Kernels.Cpu;
using BlockDance.Kernels.Cuda;
using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;
using BlockDance.Tests.Ops;
using BlockDance.Tests.Pipeline;
using Xunit;

namespace BlockDance.Tests.Caching;

/// <summary>
/// Adaptive policies on the devices: the CPU loop allocates nothing per step; on cuda-emu the decisions and results
/// are the CPU's, a computed step downloads at most one float per batch item, and a step every image skips touches no
/// host memory. Runs alone (emulator schedules and thread counts are process-wide).
/// </summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class AdaptiveDeviceTests
{
    private static GenerationRequest Request(string policy) => new()
    {
        Labels = [1, 6, 3], Steps = 16, Seed = 5, Cache = CachePolicy.Parse(policy),
    };

    [Theory]
    [InlineData("bwcache:delta=1.3,refresh=2")]
    [InlineData("teacache:threshold=0.45")]
    [InlineData("fbcache:threshold=0.8")]
    public void A_steady_state_adaptive_step_allocates_no_managed_or_device_memory(string policy)
    {
        using var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
        using var ops = new CpuOps();
        using var model = DitModel.Load(checkpoint, ops);
        using var run = new SamplingRun(model, Request(policy));
        for (int k = 0; k < 6; k++)
            run.Step();
        NoAllocation.DuringSteps(run, ops.Device, 6, 16);
        Assert.Contains('S', string.Concat(run.Report.ImagePlans.Select(p => p.Letters[6..])));
    }

    [Theory]
    [InlineData("bwcache:delta=1.3,refresh=2")]
    [InlineData("teacache:threshold=0.45")]
    [InlineData("fbcache:threshold=0.8")]
    public void On_cuda_emu_the_decisions_are_the_cpus_and_the_host_sees_one_float_per_item_per_step_at_most(string policy)
    {
        float[] cpu;
        string[] cpuPlans;
        using (var ops = new CpuOps())
            (cpu, cpuPlans, _, _) = Run(ops, policy);
        using var device = CudaEmuFixture.OpenEmulator();
        using var cuda = new CudaOps(device, DType.F32);
        var (result, plans, starts, ends) = Run(cuda, policy);
        Assert.Equal(cpuPlans, plans);
        var (rel, report) = Reference.Compare(result, cpu);
        Assert.True(rel <= 1e-4, report);
        bool teacache = policy.StartsWith("teacache", StringComparison.Ordinal);
        int skipAll = 0;
        for (int k = 0; k < 16; k++)
        {
            ulong d2h = ends[k].DeviceToHostCopies - starts[k].DeviceToHostCopies;
            ulong bytes = ends[k].DeviceToHostBytes - starts[k].DeviceToHostBytes;
            Assert.Equal(0UL, ends[k].HostToDeviceCopies - starts[k].HostToDeviceCopies);
            Assert.True(d2h <= 1 && bytes <= 6 * sizeof(float), $"step {k}: {d2h} downloads of {bytes} bytes");
            if (plans.All(p => p[k] == 'S'))
            {
                skipAll++;
                if (!teacache && !policy.StartsWith("fbcache", StringComparison.Ordinal))
                    Assert.Equal(0UL, d2h);   // BWCache: a skip step touches no host memory
            }
        }
        Assert.True(skipAll > 0 || plans.Any(p => p.Contains('S')), "the run must skip");
    }

    private static (float[] Result, string[] Plans, EmulatorCounters[] Starts, EmulatorCounters[] Ends) Run(IOps ops, string policy)
    {
        using var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
        using var model = DitModel.Load(checkpoint, ops);
        using var run = new SamplingRun(model, Request(policy));
        var emu = (ops.Device as CudaDevice)?.Emulator;
        var starts = new EmulatorCounters[16];
        var ends = new EmulatorCounters[16];
        for (int k = 0; k < 16; k++)
        {
            if (emu is not null)
                starts[k] = emu.Counters;
            run.Step();
            if (emu is not null)
                ends[k] = emu.Counters;
        }
        var latent = run.Latent.ToFloatArray();
        return (latent, run.Report.ImagePlans.Select(p => p.Letters).ToArray(), starts, ends);
    }
}

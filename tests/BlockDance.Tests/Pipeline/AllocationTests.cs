using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Dit.Sampling;
using BlockDance.Kernels.Cpu;
using Xunit;

namespace BlockDance.Tests.Pipeline;

/// <summary>
/// The steady-state sampling loop allocates no managed memory on the thread that drives it (measured with
/// <see cref="GC.GetAllocatedBytesForCurrentThread"/>; the CPU device's worker threads run struct jobs only) and no
/// device memory. Runs alone so that thread-count changes of other tests do not interfere.
/// </summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class AllocationTests
{
    [Theory]
    [InlineData(SamplerKind.Ddim, "blockdance:n=2", 4f)]
    [InlineData(SamplerKind.Ancestral, "deepcache:n=2", 4f)]
    [InlineData(SamplerKind.Ddim, "none", 1f)]
    public void A_steady_state_step_allocates_no_managed_memory(SamplerKind sampler, string policy, float guidance)
    {
        using var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
        using var ops = new CpuOps();
        using var model = DitModel.Load(checkpoint, ops);
        using var run = new SamplingRun(model, new GenerationRequest
        {
            Labels = [1, 2, 3], Steps = 20, Sampler = sampler, GuidanceScale = guidance, Cache = CachePolicy.Parse(policy),
        });
        for (int k = 0; k < 10; k++)   // warm up: JIT tiers, the worker pool, the attention scratch
            run.Step();
        NoAllocation.DuringSteps(run, ops.Device, 10, 18);   // cache and reuse steps of the plan
    }
}

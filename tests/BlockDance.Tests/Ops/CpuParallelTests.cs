using BlockDance.Kernels.Cpu;
using Xunit;

namespace BlockDance.Tests.Ops;

/// <summary>
/// The CPU device's thread pool (<c>CpuParallel</c>): its idle workers spin for <c>SpinMicroseconds</c>, then sleep
/// (issue 16). Every loop must see each index exactly once whichever way a worker waited — sleeping (spin 0), caught
/// while spinning (a long spin), or in the race between the two (a spin about as long as the gap between loops) — and
/// a bad <c>BLOCKDANCE_CPU_SPIN_US</c> is refused by name.
/// </summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class CpuParallelTests
{
    private unsafe struct CountJob : IRangeJob
    {
        public int* Hits;

        public readonly void Execute(int start, int end)
        {
            for (int i = start; i < end; i++)
                Interlocked.Increment(ref Hits[i]);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(20)]
    [InlineData(100_000)]
    public unsafe void Every_index_runs_once_whichever_way_the_workers_wait(int spinMicroseconds)
    {
        int threads = CpuParallel.ThreadCount, spin = CpuParallel.SpinMicroseconds;
        try
        {
            CpuParallel.ThreadCount = 2;
            CpuParallel.SpinMicroseconds = spinMicroseconds;
            const int count = 37;
            int* hits = stackalloc int[count];
            var job = new CountJob { Hits = hits };
            for (int loop = 0; loop < 3000; loop++)
            {
                new Span<int>(hits, count).Clear();
                CpuParallel.For(count, ref job);
                for (int i = 0; i < count; i++)
                    Assert.True(hits[i] == 1, $"loop {loop}: index {i} ran {hits[i]} times (spin {spinMicroseconds} µs)");
                if (loop % 500 == 499)
                    Thread.Sleep(2);   // long enough for a short-spinning worker to fall asleep
            }
        }
        finally
        {
            CpuParallel.ThreadCount = threads;
            CpuParallel.SpinMicroseconds = spin;
        }
    }

    [Fact]
    public void A_bad_spin_setting_is_refused_by_name()
    {
        int threads = CpuParallel.ThreadCount, spin = CpuParallel.SpinMicroseconds;
        try
        {
            foreach (string bad in new[] { "soon", "-1", "2000000" })
            {
                Environment.SetEnvironmentVariable("BLOCKDANCE_CPU_SPIN_US", bad);
                var e = Assert.Throws<ArgumentException>(() => new CpuOps(1));
                Assert.Contains("BLOCKDANCE_CPU_SPIN_US", e.Message);
                Assert.Contains(bad, e.Message);
            }
            Environment.SetEnvironmentVariable("BLOCKDANCE_CPU_SPIN_US", "0");
            using (new CpuOps(1))
                Assert.Equal(0, CpuParallel.SpinMicroseconds);
            Environment.SetEnvironmentVariable("BLOCKDANCE_CPU_SPIN_US", "750");
            using (new CpuOps(1))
                Assert.Equal(750, CpuParallel.SpinMicroseconds);
        }
        finally
        {
            Environment.SetEnvironmentVariable("BLOCKDANCE_CPU_SPIN_US", null);
            CpuParallel.ThreadCount = threads;
            CpuParallel.SpinMicroseconds = spin;
        }
    }
}

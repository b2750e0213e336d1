using BlockDance.Kernels.Cpu;
using Xunit;

namespace BlockDance.Tests.Ops;

/// <summary>
/// The CPU device's thread pool (<c>CpuParallel</c>): every loop sees each index exactly once, over thousands of
/// loops started back to back (the workers caught just after they finished the last one) and after pauses long enough
/// for them to fall asleep.
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
    [InlineData(2, 37)]
    [InlineData(3, 5)]
    [InlineData(2, 1000)]
    public unsafe void Every_index_runs_once_in_every_loop(int threadCount, int count)
    {
        int threads = CpuParallel.ThreadCount;
        try
        {
            CpuParallel.ThreadCount = threadCount;
            int* hits = stackalloc int[count];
            var job = new CountJob { Hits = hits };
            for (int loop = 0; loop < 3000; loop++)
            {
                new Span<int>(hits, count).Clear();
                CpuParallel.For(count, ref job);
                for (int i = 0; i < count; i++)
                    Assert.True(hits[i] == 1, $"loop {loop}: index {i} of {count} ran {hits[i]} times on {threadCount} threads");
                if (loop % 500 == 499)
                    Thread.Sleep(5);   // the workers go to sleep; the next loop wakes them
            }
        }
        finally
        {
            CpuParallel.ThreadCount = threads;
        }
    }
}

using BlockDance.Dit.Pipeline;
using BlockDance.Runtime;

namespace BlockDance.Tests.Pipeline;

/// <summary>The zero-allocation check of the steady state: neither managed memory on this thread nor device memory.</summary>
internal static class NoAllocation
{
    /// <summary>Runs <paramref name="action"/> (warmed up by the caller) and asserts it allocated nothing.</summary>
    public static void During(Device device, Action action)
    {
        long liveBytes = device.LiveBytes;
        long before = GC.GetAllocatedBytesForCurrentThread();
        action();
        Xunit.Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Xunit.Assert.Equal(liveBytes, device.LiveBytes);   // and no native device memory
    }

    /// <summary>Runs steps <paramref name="from"/> … <paramref name="to"/>−1 of <paramref name="run"/> and asserts they allocated nothing.</summary>
    public static void DuringSteps(SamplingRun run, Device device, int from, int to) => During(device, () =>
    {
        for (int k = from; k < to; k++)
            run.Step();
    });
}

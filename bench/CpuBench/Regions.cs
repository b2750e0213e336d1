using System.Diagnostics;
using System.Globalization;
using System.Text;
using BlockDance.Kernels.Cpu;
using BlockDance.Runtime;

namespace BlockDance.Bench;

/// <summary>
/// What one parallel region of the CPU device costs beyond its work: <c>CpuOps.Silu</c> on 16 384 floats (two parts of
/// a few microseconds each, so the time is almost all hand-over) called back to back, and called after the caller has
/// worked alone for a while (the pool thread has gone to sleep and must be woken). Each figure is the median and the
/// 10th and 90th percentiles over <c>calls</c> calls; the same op on one thread is the floor.
/// </summary>
internal static class Regions
{
    /// <summary>Runs the probe and returns its lines.</summary>
    public static string Run(int threads, int calls)
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        foreach (int t in new[] { 1, threads })
        {
            using var ops = new CpuOps(t);
            var dev = ops.Device;
            using var x = dev.FromFloats(new float[16384], DType.F32, 16384);
            using var y = dev.Allocate(DType.F32, 16384);
            foreach (double gapUs in new[] { 0.0, 20, 100, 500, 2000 })
            {
                var times = new double[calls];
                for (int i = -calls / 10; i < calls; i++)
                {
                    Spin(gapUs);  // the caller's own work in between (an inline op): the pool thread waits meanwhile
                    long start = Stopwatch.GetTimestamp();
                    ops.Silu(x, y);
                    if (i >= 0)
                        times[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
                }
                Array.Sort(times);
                string line = string.Create(ci, $"threads {t}, caller busy {gapUs,6:F0} µs before each call: median {times[calls / 2],7:F1} µs, p10 {times[calls / 10],7:F1} µs, p90 {times[calls * 9 / 10],7:F1} µs");
                Console.WriteLine(line);
                sb.AppendLine(line);
            }
        }
        return sb.ToString();
    }

    private static void Spin(double us)
    {
        if (us <= 0)
            return;
        long until = Stopwatch.GetTimestamp() + (long)(us * Stopwatch.Frequency / 1e6);
        while (Stopwatch.GetTimestamp() < until)
            Thread.SpinWait(20);
    }
}

using BlockDance.Kernels.Cpu;

namespace BlockDance.Kernels;

/// <summary>Opens the op backend for a device name given on the command line.</summary>
public static class Backends
{
    public const string Names = "cpu";

    /// <param name="device">"cpu".</param>
    /// <param name="threads">Threads for the CPU device; 0 uses every core.</param>
    public static IOps Open(string device, int threads = 0) => device.ToLowerInvariant() switch
    {
        "cpu" => new CpuOps(threads),
        "cuda" or "cuda-emu" => throw new NotSupportedException(
            $"the {device} device is not part of this build yet; use --device cpu"),
        _ => throw new ArgumentException($"unknown device '{device}': expected {Names}"),
    };
}

using BlockDance.Kernels.Cpu;
using BlockDance.Kernels.Cuda;
using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;

namespace BlockDance.Kernels;

/// <summary>Opens the op backend for a device name given on the command line.</summary>
internal static class Backends
{
    public const string Names = "cpu, cuda, cuda-emu";

    /// <param name="device">"cpu"; "cuda" (an NVIDIA GPU); "cuda-emu" (the same CUDA code on the CPU emulator of native/).</param>
    /// <param name="threads">Threads for the CPU device; 0 uses every core. Ignored by the CUDA devices.</param>
    /// <param name="activationType">Storage type of activations on the CUDA devices (F32, F16, BF16); the CPU device is F32 only.</param>
    /// <returns>Ops that own their device: disposing them releases it.</returns>
    /// <exception cref="InvalidRequestException">An unknown device name, or a data type the device does not compute in.</exception>
    /// <exception cref="DeviceException">The CPU device without OpenBLAS (the message names the package to install).</exception>
    /// <exception cref="CudaUnavailableException">"cuda" without a GPU or driver (the message suggests cuda-emu), or
    /// "cuda-emu" without the emulator libraries (the message says how to build them).</exception>
    public static IOps Open(string device, int threads = 0, DType activationType = DType.F32) => device.ToLowerInvariant() switch
    {
        "cpu" => activationType == DType.F32 ? new CpuOps(threads)
            : throw new InvalidRequestException($"the cpu device computes in F32 only, not {activationType}; use --device cuda or cuda-emu", nameof(activationType)),
        "cuda" => CudaOps.Open(CudaBackend.Nvidia, activationType),
        "cuda-emu" => CudaOps.Open(CudaBackend.Emulator, activationType),
        _ => throw new InvalidRequestException($"unknown device '{device}': expected {Names}", nameof(device)),
    };
}

using BlockDance.Runtime;

namespace BlockDance.Dit.Pipeline;

/// <summary>Where a <see cref="DitPipeline"/> runs.</summary>
public enum DeviceKind
{
    /// <summary>The CPU: managed C# with OpenBLAS <c>sgemm</c>, float32 only (the reference device).</summary>
    Cpu,

    /// <summary>An NVIDIA GPU: the project's CUDA kernels compiled by NVRTC, GEMMs in cuBLAS.</summary>
    Cuda,

    /// <summary>The same CUDA code path on the project's CPU emulator (native/); slow, for tests without a GPU.</summary>
    CudaEmulator,
}

/// <summary>How a <see cref="DitPipeline"/> opens its model.</summary>
public sealed record PipelineOptions
{
    /// <summary>The device; <see cref="DeviceKind.Cpu"/> by default.</summary>
    public DeviceKind Device { get; init; } = DeviceKind.Cpu;

    /// <summary>CPU threads; 0 uses every core. The thread count is process-wide (OpenBLAS), not per pipeline.</summary>
    public int Threads { get; init; }

    /// <summary>Storage type of weights and activations on the CUDA devices (F32, F16, BF16; math is F32). The CPU
    /// device takes F32 only.</summary>
    public DType DType { get; init; } = DType.F32;

    /// <summary>Attention heads, for a checkpoint whose metadata does not say (and whose depth and width match no preset).</summary>
    public int? Heads { get; init; }

    /// <summary>Numerics to follow instead of the checkpoint layout's (<see cref="DitNumerics.Original"/> or
    /// <see cref="DitNumerics.Diffusers"/>); null follows the layout.</summary>
    public DitNumerics? Numerics { get; init; }
}

/// <summary>The command-line names of <see cref="DeviceKind"/> (<c>cpu</c>, <c>cuda</c>, <c>cuda-emu</c>).</summary>
internal static class DeviceNames
{
    public const string All = "cpu, cuda, cuda-emu";

    public static string Name(DeviceKind kind) => kind switch
    {
        DeviceKind.Cpu => "cpu",
        DeviceKind.Cuda => "cuda",
        DeviceKind.CudaEmulator => "cuda-emu",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, $"unknown device kind; expected one of {All}"),
    };

    /// <exception cref="ArgumentException">Not one of the names.</exception>
    public static DeviceKind Parse(string name) => name.ToLowerInvariant() switch
    {
        "cpu" => DeviceKind.Cpu,
        "cuda" => DeviceKind.Cuda,
        "cuda-emu" => DeviceKind.CudaEmulator,
        _ => throw new ArgumentException($"unknown device '{name}': expected {All}"),
    };
}

using BlockDance.Runtime.Cuda.Native;

namespace BlockDance.Runtime.Cuda;

/// <summary>Which implementation of the CUDA driver and cuBLAS a device binds.</summary>
public enum CudaBackend
{
    /// <summary>NVIDIA's <c>libcuda.so.1</c> and <c>libcublas.so.12/11</c>: a real GPU.</summary>
    Nvidia,

    /// <summary>The project's emulator (<c>native/</c>): the same symbols, kernels run on CPU fibers.</summary>
    Emulator,
}

/// <summary>
/// Finds the libraries of a backend. The emulator's are looked up in <c>$BLOCKDANCE_NATIVE_DIR</c>, then in
/// <c>native/build/lib</c> of the nearest parent folder of the application. NVRTC is always NVIDIA's (Debian's
/// <c>libnvrtc11.2</c> on machines without a GPU), so every run also proves the kernels compile for the GPU.
/// </summary>
internal static class CudaLibraries
{
    public const string EmulatorHint = "build it with: cmake -S native -B native/build -DCMAKE_BUILD_TYPE=Release && cmake --build native/build";

    public static NativeLibraryHandle LoadDriver(CudaBackend backend) => backend == CudaBackend.Nvidia
        ? NativeLibraryHandle.TryLoad(["libcuda.so.1"], out string tried)
          ?? throw new CudaUnavailableException($"no NVIDIA driver on this machine (could not load {tried}); use --device cuda-emu to run the CUDA code on the CPU emulator")
        : LoadEmulator("libcuda_emu.so");

    public static NativeLibraryHandle LoadCublas(CudaBackend backend) => backend == CudaBackend.Nvidia
        ? NativeLibraryHandle.TryLoad(["libcublas.so.12", "libcublas.so.11"], out string tried)
          ?? throw new CudaUnavailableException($"cuBLAS was not found (tried {tried}); install the CUDA toolkit's libcublas")
        : LoadEmulator("libcublas_emu.so");

    /// <summary>NVRTC, or null when it is not installed (the emulator can run without it).</summary>
    public static NativeLibraryHandle? TryLoadNvrtc() =>
        NativeLibraryHandle.TryLoad(["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"], out _);

    public static string? EmulatorDirectory()
    {
        if (Environment.GetEnvironmentVariable("BLOCKDANCE_NATIVE_DIR") is { Length: > 0 } dir)
            return dir;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "native", "build", "lib");
            if (File.Exists(Path.Combine(candidate, "libcuda_emu.so")))
                return candidate;
        }
        return null;
    }

    private static NativeLibraryHandle LoadEmulator(string name)
    {
        string dir = EmulatorDirectory() ?? throw new CudaUnavailableException(
            $"the CUDA emulator ({name}) was not found in $BLOCKDANCE_NATIVE_DIR or native/build/lib; {EmulatorHint}");
        string path = Path.Combine(dir, name);
        return NativeLibraryHandle.TryLoad([path], out _)
            ?? throw new CudaUnavailableException($"cannot load {path}; {EmulatorHint}");
    }
}

namespace BlockDance.Runtime.Cuda.Native;

/// <summary>
/// The CUDA driver API surface the project uses (cuda-on-cpu.md §3.2), as raw function pointers resolved by their
/// exact, versioned export names (<c>cuMemAlloc_v2</c>, not the ABI-compatibility <c>cuMemAlloc</c> with a 32-bit
/// pointer). The same table binds NVIDIA's <c>libcuda.so.1</c> or the project's emulator, which exports the same names.
/// Types: CUresult int, CUdevice int, CUdeviceptr ulong, every handle an opaque pointer.
/// </summary>
internal sealed unsafe class CudaDriverApi
{
    public CudaDriverApi(NativeLibraryHandle lib)
    {
        Library = lib;
        cuInit = (delegate* unmanaged<uint, int>)lib.Export("cuInit");
        cuDriverGetVersion = (delegate* unmanaged<int*, int>)lib.TryExport("cuDriverGetVersion");
        cuDeviceGetCount = (delegate* unmanaged<int*, int>)lib.Export("cuDeviceGetCount");
        cuDeviceGet = (delegate* unmanaged<int*, int, int>)lib.Export("cuDeviceGet");
        cuDeviceGetName = (delegate* unmanaged<byte*, int, int, int>)lib.Export("cuDeviceGetName");
        cuDeviceGetAttribute = (delegate* unmanaged<int*, int, int, int>)lib.Export("cuDeviceGetAttribute");
        cuDeviceTotalMem = (delegate* unmanaged<nuint*, int, int>)lib.Export("cuDeviceTotalMem_v2");
        cuDevicePrimaryCtxRetain = (delegate* unmanaged<nint*, int, int>)lib.Export("cuDevicePrimaryCtxRetain");
        cuDevicePrimaryCtxRelease = (delegate* unmanaged<int, int>)lib.Export("cuDevicePrimaryCtxRelease_v2");
        cuCtxSetCurrent = (delegate* unmanaged<nint, int>)lib.Export("cuCtxSetCurrent");
        cuCtxGetCurrent = (delegate* unmanaged<nint*, int>)lib.TryExport("cuCtxGetCurrent");
        cuCtxSynchronize = (delegate* unmanaged<int>)lib.TryExport("cuCtxSynchronize");
        cuModuleLoadData = (delegate* unmanaged<nint*, void*, int>)lib.Export("cuModuleLoadData");
        cuModuleGetFunction = (delegate* unmanaged<nint*, nint, byte*, int>)lib.Export("cuModuleGetFunction");
        cuModuleUnload = (delegate* unmanaged<nint, int>)lib.Export("cuModuleUnload");
        cuFuncSetAttribute = (delegate* unmanaged<nint, int, int, int>)lib.TryExport("cuFuncSetAttribute");
        cuFuncGetAttribute = (delegate* unmanaged<int*, int, nint, int>)lib.TryExport("cuFuncGetAttribute");
        cuLaunchKernel = (delegate* unmanaged<nint, uint, uint, uint, uint, uint, uint, uint, nint, void**, void**, int>)lib.Export("cuLaunchKernel");
        cuMemAlloc = (delegate* unmanaged<ulong*, nuint, int>)lib.Export("cuMemAlloc_v2");
        cuMemFree = (delegate* unmanaged<ulong, int>)lib.Export("cuMemFree_v2");
        cuMemGetInfo = (delegate* unmanaged<nuint*, nuint*, int>)lib.TryExport("cuMemGetInfo_v2");
        cuMemcpyHtoDAsync = (delegate* unmanaged<ulong, void*, nuint, nint, int>)lib.Export("cuMemcpyHtoDAsync_v2");
        cuMemcpyDtoHAsync = (delegate* unmanaged<void*, ulong, nuint, nint, int>)lib.Export("cuMemcpyDtoHAsync_v2");
        cuMemcpyDtoDAsync = (delegate* unmanaged<ulong, ulong, nuint, nint, int>)lib.Export("cuMemcpyDtoDAsync_v2");
        cuMemsetD8Async = (delegate* unmanaged<ulong, byte, nuint, nint, int>)lib.Export("cuMemsetD8Async");
        cuMemsetD32Async = (delegate* unmanaged<ulong, uint, nuint, nint, int>)lib.TryExport("cuMemsetD32Async");
        cuStreamCreate = (delegate* unmanaged<nint*, uint, int>)lib.Export("cuStreamCreate");
        cuStreamSynchronize = (delegate* unmanaged<nint, int>)lib.Export("cuStreamSynchronize");
        cuStreamDestroy = (delegate* unmanaged<nint, int>)lib.Export("cuStreamDestroy_v2");
        cuEventCreate = (delegate* unmanaged<nint*, uint, int>)lib.Export("cuEventCreate");
        cuEventRecord = (delegate* unmanaged<nint, nint, int>)lib.Export("cuEventRecord");
        cuEventSynchronize = (delegate* unmanaged<nint, int>)lib.Export("cuEventSynchronize");
        cuEventElapsedTime = (delegate* unmanaged<float*, nint, nint, int>)lib.Export("cuEventElapsedTime");
        cuEventDestroy = (delegate* unmanaged<nint, int>)lib.Export("cuEventDestroy_v2");
        cuGetErrorName = (delegate* unmanaged<int, byte**, int>)lib.Export("cuGetErrorName");
        cuGetErrorString = (delegate* unmanaged<int, byte**, int>)lib.Export("cuGetErrorString");
    }

    public NativeLibraryHandle Library { get; }

    // Entry points bound with TryExport are part of the surface (cuda-on-cpu.md §3.2) but not needed by the current
    // backend; they are null when a driver lacks them, so an older driver or the emulator still opens.

    public readonly delegate* unmanaged<uint, int> cuInit;
    public readonly delegate* unmanaged<int*, int> cuDriverGetVersion;
    public readonly delegate* unmanaged<int*, int> cuDeviceGetCount;
    public readonly delegate* unmanaged<int*, int, int> cuDeviceGet;
    public readonly delegate* unmanaged<byte*, int, int, int> cuDeviceGetName;
    public readonly delegate* unmanaged<int*, int, int, int> cuDeviceGetAttribute;
    public readonly delegate* unmanaged<nuint*, int, int> cuDeviceTotalMem;
    public readonly delegate* unmanaged<nint*, int, int> cuDevicePrimaryCtxRetain;
    public readonly delegate* unmanaged<int, int> cuDevicePrimaryCtxRelease;
    public readonly delegate* unmanaged<nint, int> cuCtxSetCurrent;
    public readonly delegate* unmanaged<nint*, int> cuCtxGetCurrent;
    public readonly delegate* unmanaged<int> cuCtxSynchronize;
    public readonly delegate* unmanaged<nint*, void*, int> cuModuleLoadData;
    public readonly delegate* unmanaged<nint*, nint, byte*, int> cuModuleGetFunction;
    public readonly delegate* unmanaged<nint, int> cuModuleUnload;
    public readonly delegate* unmanaged<nint, int, int, int> cuFuncSetAttribute;
    public readonly delegate* unmanaged<int*, int, nint, int> cuFuncGetAttribute;
    public readonly delegate* unmanaged<nint, uint, uint, uint, uint, uint, uint, uint, nint, void**, void**, int> cuLaunchKernel;
    public readonly delegate* unmanaged<ulong*, nuint, int> cuMemAlloc;
    public readonly delegate* unmanaged<ulong, int> cuMemFree;
    public readonly delegate* unmanaged<nuint*, nuint*, int> cuMemGetInfo;
    public readonly delegate* unmanaged<ulong, void*, nuint, nint, int> cuMemcpyHtoDAsync;
    public readonly delegate* unmanaged<void*, ulong, nuint, nint, int> cuMemcpyDtoHAsync;
    public readonly delegate* unmanaged<ulong, ulong, nuint, nint, int> cuMemcpyDtoDAsync;
    public readonly delegate* unmanaged<ulong, byte, nuint, nint, int> cuMemsetD8Async;
    public readonly delegate* unmanaged<ulong, uint, nuint, nint, int> cuMemsetD32Async;
    public readonly delegate* unmanaged<nint*, uint, int> cuStreamCreate;
    public readonly delegate* unmanaged<nint, int> cuStreamSynchronize;
    public readonly delegate* unmanaged<nint, int> cuStreamDestroy;
    public readonly delegate* unmanaged<nint*, uint, int> cuEventCreate;
    public readonly delegate* unmanaged<nint, nint, int> cuEventRecord;
    public readonly delegate* unmanaged<nint, int> cuEventSynchronize;
    public readonly delegate* unmanaged<float*, nint, nint, int> cuEventElapsedTime;
    public readonly delegate* unmanaged<nint, int> cuEventDestroy;
    public readonly delegate* unmanaged<int, byte**, int> cuGetErrorName;
    public readonly delegate* unmanaged<int, byte**, int> cuGetErrorString;

    // Attribute and enum values (cuda.h, CUDA 12.6).
    public const int AttrMaxThreadsPerBlock = 1, AttrMaxSharedMemoryPerBlock = 8, AttrMultiprocessorCount = 16,
        AttrComputeCapabilityMajor = 75, AttrComputeCapabilityMinor = 76, AttrMaxSharedMemoryPerBlockOptin = 97,
        AttrClockRate = 13, AttrMemoryClockRate = 36, AttrGlobalMemoryBusWidth = 37;
    public const int FuncAttrMaxDynamicSharedSizeBytes = 8, FuncAttrNumRegs = 4, FuncAttrSharedSizeBytes = 1;
    public const uint StreamNonBlocking = 1, EventDefault = 0;
    public const int ErrorNoDevice = 100;
}

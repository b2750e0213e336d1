namespace BlockDance.Runtime.Cuda.Native;

/// <summary>
/// The cuBLAS surface (cuda-on-cpu.md §3.4). cuBLAS is column-major; alpha and beta are host pointers (the default
/// pointer mode) of float with <see cref="Compute32F"/>.
/// </summary>
internal sealed unsafe class CublasApi
{
    public CublasApi(NativeLibraryHandle lib)
    {
        Library = lib;
        cublasCreate = (delegate* unmanaged<nint*, int>)lib.Export("cublasCreate_v2");
        cublasDestroy = (delegate* unmanaged<nint, int>)lib.Export("cublasDestroy_v2");
        cublasSetStream = (delegate* unmanaged<nint, nint, int>)lib.Export("cublasSetStream_v2");
        cublasSetMathMode = (delegate* unmanaged<nint, int, int>)lib.Export("cublasSetMathMode");
        cublasSetWorkspace = (delegate* unmanaged<nint, ulong, nuint, int>)lib.TryExport("cublasSetWorkspace_v2"); // optional: not needed before graph capture
        cublasGemmEx = (delegate* unmanaged<nint, int, int, int, int, int, float*, ulong, int, int, ulong, int, int, float*, ulong, int, int, int, int, int>)lib.Export("cublasGemmEx");
        cublasGemmStridedBatchedEx = (delegate* unmanaged<nint, int, int, int, int, int, float*, ulong, int, int, long, ulong, int, int, long, float*, ulong, int, int, long, int, int, int, int>)lib.Export("cublasGemmStridedBatchedEx");
        cublasGetStatusString = (delegate* unmanaged<int, byte*>)lib.TryExport("cublasGetStatusString");
    }

    public NativeLibraryHandle Library { get; }

    public readonly delegate* unmanaged<nint*, int> cublasCreate;
    public readonly delegate* unmanaged<nint, int> cublasDestroy;
    public readonly delegate* unmanaged<nint, nint, int> cublasSetStream;
    public readonly delegate* unmanaged<nint, int, int> cublasSetMathMode;
    public readonly delegate* unmanaged<nint, ulong, nuint, int> cublasSetWorkspace;

    /// <summary>(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc, computeType, algo)</summary>
    public readonly delegate* unmanaged<nint, int, int, int, int, int, float*, ulong, int, int, ulong, int, int, float*, ulong, int, int, int, int, int> cublasGemmEx;

    /// <summary>(handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb, strideB, beta, C, Ctype, ldc, strideC, batch, computeType, algo)</summary>
    public readonly delegate* unmanaged<nint, int, int, int, int, int, float*, ulong, int, int, long, ulong, int, int, long, float*, ulong, int, int, long, int, int, int, int> cublasGemmStridedBatchedEx;
    public readonly delegate* unmanaged<int, byte*> cublasGetStatusString;

    public const int OpN = 0, OpT = 1;
    public const int Compute32F = 68;
    public const int GemmDefault = -1;
    public const int DefaultMath = 0;
    public const int R32F = 0, R16F = 2, R16BF = 14;

    public static int DataType(DType t) => t switch
    {
        DType.F32 => R32F,
        DType.F16 => R16F,
        DType.BF16 => R16BF,
        _ => throw new ArgumentException($"cuBLAS GEMMs here take F32, F16 or BF16, not {t}"),
    };
}

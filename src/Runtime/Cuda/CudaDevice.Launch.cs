using BlockDance.Runtime.Cuda.Native;

namespace BlockDance.Runtime.Cuda;

/// <summary>How cuBLAS reads a column-major GEMM operand: as stored (N) or transposed (T).</summary>
public enum GemmOp
{
    /// <summary>As stored: <c>CUBLAS_OP_N</c>.</summary>
    N = CublasApi.OpN,
    /// <summary>Transposed: <c>CUBLAS_OP_T</c>.</summary>
    T = CublasApi.OpT,
}

/// <summary>
/// One column-major GEMM operand on the device: its address, storage type (F32, F16 or BF16), leading dimension and,
/// for a strided batch, the element stride from one matrix of the batch to the next.
/// </summary>
/// <param name="Address">Device address of the first matrix.</param>
/// <param name="Type">Storage type: F32, F16 or BF16.</param>
/// <param name="Ld">Leading dimension in elements (at least the stored rows).</param>
/// <param name="Stride">Elements between consecutive matrices of a strided batch (ignored by <see cref="CudaDevice.Gemm"/>).</param>
public readonly record struct GemmOperand(nint Address, DType Type, int Ld, long Stride = 0);

// The typed calls the kernel layer makes: a launch with its arguments as one struct, and cuBLAS GEMMs in fp32 compute.
// They keep the driver and cuBLAS function tables (Api, Blas) private to Runtime.
public sealed unsafe partial class CudaDevice
{
    /// <summary>
    /// Queues <paramref name="function"/> on the device's stream with a 1-D grid. The kernel's arguments are the fields
    /// of <paramref name="args"/>, passed whole as <c>CU_LAUNCH_PARAM_BUFFER_POINTER</c> with
    /// <c>CU_LAUNCH_PARAM_BUFFER_SIZE</c> = <c>sizeof(TArgs)</c>: a sequential struct lays its fields out at their
    /// natural alignment, exactly as the driver lays out the kernel's parameters (the caller checks that the field types
    /// match them; the emulator rejects a buffer whose size differs from the kernel's parameter block). The driver
    /// copies the buffer during the call. Allocates nothing; a failure throws a <see cref="CudaException"/> naming
    /// <paramref name="kernelName"/> and the configuration.
    /// </summary>
    /// <param name="function">A CUfunction from <see cref="CudaModule.Function"/>.</param>
    /// <param name="grid">Blocks.</param>
    /// <param name="block">Threads per block.</param>
    /// <param name="sharedBytes">Dynamic shared memory per block.</param>
    /// <param name="args">The kernel's arguments, in parameter order.</param>
    /// <param name="kernelName">The kernel's name for the error message (pass a cached string: nothing is formatted on success).</param>
    public void Launch<TArgs>(nint function, uint grid, uint block, uint sharedBytes, in TArgs args, string kernelName)
        where TArgs : unmanaged
    {
        nuint size = (nuint)sizeof(TArgs);
        void** extra = stackalloc void*[5];
        MakeCurrent();
        // SAFETY: args is pinned for the call; extra and size live on this frame. cuLaunchKernel copies the parameter
        // buffer before it returns (driver API contract), so no pointer outlives the call.
        fixed (TArgs* buffer = &args)
        {
            extra[0] = (void*)1;      // CU_LAUNCH_PARAM_BUFFER_POINTER
            extra[1] = buffer;
            extra[2] = (void*)2;      // CU_LAUNCH_PARAM_BUFFER_SIZE
            extra[3] = &size;
            extra[4] = null;          // CU_LAUNCH_PARAM_END
            int r = Api.cuLaunchKernel(function, grid, 1, 1, block, 1, 1, sharedBytes, _stream, null, extra);
            if (r != 0)
                Check(r, $"cuLaunchKernel({kernelName}, grid {grid}, block {block}, {sharedBytes} B shared)");
        }
    }

    /// <summary>
    /// cuBLAS <c>GemmEx</c> on the device's stream, column-major: <c>C (m×n) = alpha·op(A)·op(B) + beta·C</c> with
    /// op(A) m×k and op(B) k×n, accumulated in float32 (<c>CUBLAS_COMPUTE_32F</c>, no TF32). A and B share a storage
    /// type; C has it too or is F32. The caller has checked that the operands hold the shapes.
    /// </summary>
    public void Gemm(GemmOp opA, GemmOp opB, int m, int n, int k, float alpha, GemmOperand a, GemmOperand b, float beta, GemmOperand c)
    {
        MakeCurrent();
        // SAFETY: alpha and beta are host scalars (the handle's default host pointer mode) read during the call.
        CheckBlas(Blas.cublasGemmEx(_cublas, (int)opA, (int)opB, m, n, k,
            &alpha, (ulong)a.Address, CublasApi.DataType(a.Type), a.Ld,
            (ulong)b.Address, CublasApi.DataType(b.Type), b.Ld,
            &beta, (ulong)c.Address, CublasApi.DataType(c.Type), c.Ld,
            CublasApi.Compute32F, CublasApi.GemmDefault), "cublasGemmEx");
    }

    /// <summary>
    /// cuBLAS <c>GemmStridedBatchedEx</c>: <see cref="Gemm"/> for <paramref name="batch"/> matrices at once, matrix i
    /// of each operand at <c>Address + i·Stride</c> elements.
    /// </summary>
    public void GemmStridedBatched(GemmOp opA, GemmOp opB, int m, int n, int k, float alpha, GemmOperand a, GemmOperand b,
        float beta, GemmOperand c, int batch)
    {
        MakeCurrent();
        // SAFETY: as in Gemm.
        CheckBlas(Blas.cublasGemmStridedBatchedEx(_cublas, (int)opA, (int)opB, m, n, k,
            &alpha, (ulong)a.Address, CublasApi.DataType(a.Type), a.Ld, a.Stride,
            (ulong)b.Address, CublasApi.DataType(b.Type), b.Ld, b.Stride,
            &beta, (ulong)c.Address, CublasApi.DataType(c.Type), c.Ld, c.Stride, batch,
            CublasApi.Compute32F, CublasApi.GemmDefault), "cublasGemmStridedBatchedEx");
    }
}

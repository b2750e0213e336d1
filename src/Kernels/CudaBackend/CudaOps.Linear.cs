using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;

namespace BlockDance.Kernels.Cuda;

// linear.cu: Linear as a cuBLAS GEMM, then the bias/activation epilogue.
public sealed partial class CudaOps
{
    [Kernel(KernelModule.Linear, "bias_act")]
    private struct BiasActArgs : IKernelArgs
    {
        public nint Acc, Bias, Y;
        public int Total, N, Act;
    }

    /// <inheritdoc/>
    public void Linear(Tensor x, Tensor w, Tensor? b, Tensor y, Activation act = Activation.None)
    {
        Activations("Linear", x, w, y);
        if (b is not null)
            Activations("Linear", b);
        var (m, n, k) = Check.Linear(x, w, b, y);
        if (m == 0 || n == 0)
            return;
        if (b is null && act == Activation.None)
        {
            Gemm(w.Address, x.Address, y.Address, ActivationType, m, n, k);
            return;
        }
        // F32: the float32 product lands in y and the epilogue runs in place. 16-bit storage: the product stays float32
        // in the workspace, so it is rounded once, after bias and activation.
        nint acc = ActivationType == DType.F32 ? y.Address : Workspace((long)m * n * sizeof(float));
        Gemm(w.Address, x.Address, acc, DType.F32, m, n, k);
        int total = Total(y.Count, "Linear");
        int actCode = act switch
        {
            Activation.None => 0,
            Activation.GeluTanh => 1,
            Activation.Silu => 2,
            _ => throw new ArgumentOutOfRangeException(nameof(act), act, "unknown activation"),
        };
        Launch(ElementwiseGrid(total), ElementwiseBlock, new BiasActArgs { Acc = acc, Bias = b?.Address ?? 0, Y = y.Address, Total = total, N = n, Act = actCode });
    }

    /// <summary>
    /// Row-major <c>Y[M,N] = X[M,K]·W[N,K]ᵀ</c> as column-major cuBLAS: Yᵀ (N×M, ld N) = Wᵀ·X with W stored as a K×N
    /// column-major matrix (ld K, transposed) and X as K×M (ld K): <c>GemmEx(T, N, m=N, n=M, k=K)</c>.
    /// </summary>
    private void Gemm(nint w, nint x, nint y, DType yType, int m, int n, int k) =>
        _device.Gemm(GemmOp.T, GemmOp.N, n, m, k, 1f, new(w, ActivationType, k), new(x, ActivationType, k), 0f, new(y, yType, n));
}

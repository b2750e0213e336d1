using BlockDance.Runtime;

namespace BlockDance.Kernels.Cuda;

// elementwise.cu: silu, add.
public sealed partial class CudaOps
{
    [Kernel(KernelModule.Elementwise, "silu")]
    private struct SiluArgs : IKernelArgs
    {
        public nint X, Y;
        public int Total;
    }

    [Kernel(KernelModule.Elementwise, "add")]
    private struct AddArgs : IKernelArgs
    {
        public nint A, B, Y;
        public int Total;
    }

    /// <inheritdoc/>
    public void Silu(Tensor x, Tensor y)
    {
        Activations("Silu", x, y);
        Check.SameCount(x, y, "Silu");
        int total = Total(x.Count, "Silu");
        if (total > 0)
            Launch(ElementwiseGrid(total), ElementwiseBlock, new SiluArgs { X = x.Address, Y = y.Address, Total = total });
    }

    /// <inheritdoc/>
    public void Add(Tensor a, Tensor b, Tensor y)
    {
        Activations("Add", a, b, y);
        Check.SameCount(a, b, "Add");
        Check.SameCount(a, y, "Add");
        int total = Total(a.Count, "Add");
        if (total > 0)
            Launch(ElementwiseGrid(total), ElementwiseBlock, new AddArgs { A = a.Address, B = b.Address, Y = y.Address, Total = total });
    }
}

using BlockDance.Runtime;

namespace BlockDance.Kernels.Cuda;

// rearrange.cu: Latte's token rearrangement between spatial and temporal blocks.
public sealed partial class CudaOps
{
    [Kernel(KernelModule.Rearrange, "swap_frame_token_axes")]
    private struct SwapFrameTokenAxesArgs : IKernelArgs
    {
        public nint X, Y;
        public int P, Q, D, Total;
    }

    /// <inheritdoc/>
    public void SwapFrameTokenAxes(Tensor x, Tensor y)
    {
        Activations("SwapFrameTokenAxes", x, y);
        var (_, p, q, d) = Check.SwapFrameTokenAxes(x, y);
        int total = Total(y.Count, "SwapFrameTokenAxes");
        if (total > 0)
            Launch(ElementwiseGrid(total), ElementwiseBlock, new SwapFrameTokenAxesArgs { X = x.Address, Y = y.Address, P = p, Q = q, D = d, Total = total });
    }
}

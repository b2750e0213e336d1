using BlockDance.Runtime;

namespace BlockDance.Kernels.Cuda;

// indicator.cu: relative_l1, the indicator of the adaptive cache policies (BWCache, TeaCache, FBCache).
public sealed partial class CudaOps
{
    [Kernel(KernelModule.Indicator, "relative_l1")]
    private struct RelativeL1Args : IKernelArgs
    {
        public nint X, Reference, Result;
        public int PerItem;
        public float Weight;
        public int Accumulate;
    }

    /// <inheritdoc/>
    /// <remarks>One block of 256 threads per batch item (grid = B); the result is F32 [B] on the device.</remarks>
    public void RelativeL1(Tensor x, Tensor reference, Tensor result, float weight, bool accumulate)
    {
        Activations("RelativeL1", x, reference);
        OnDevice("RelativeL1", result);
        var (batch, perItem) = Check.RelativeL1(x, reference, result);
        Total(x.Count, "RelativeL1");
        if (batch > 0)
            Launch((uint)batch, ElementwiseBlock, new RelativeL1Args
            {
                X = x.Address, Reference = reference.Address, Result = result.Address,
                PerItem = perItem, Weight = weight, Accumulate = accumulate ? 1 : 0,
            });
    }
}

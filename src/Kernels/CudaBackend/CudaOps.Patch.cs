using BlockDance.Runtime;

namespace BlockDance.Kernels.Cuda;

// patch.cu: patchify (im2col of the patch embedding) and unpatchify, one thread per output element.
public sealed partial class CudaOps
{
    [Kernel(KernelModule.Patch, "patchify")]
    private struct PatchifyArgs : IKernelArgs
    {
        public nint Image, Cols;
        public int Channels, Height, Width, Patch, Total;
    }

    [Kernel(KernelModule.Patch, "unpatchify")]
    private struct UnpatchifyArgs : IKernelArgs
    {
        public nint X, Image;
        public int Channels, Height, Width, Patch, Total;
    }

    /// <inheritdoc/>
    public void Patchify(Tensor image, int patch, Tensor cols)
    {
        Activations("Patchify", image, cols);
        var g = Check.Patchify(image, patch, cols);
        int total = Total(image.Count, "Patchify");
        if (total > 0)
            Launch(ElementwiseGrid(total), ElementwiseBlock, new PatchifyArgs { Image = image.Address, Cols = cols.Address,
                Channels = g.Channels, Height = g.Height, Width = g.Width, Patch = patch, Total = total });
    }

    /// <inheritdoc/>
    public void Unpatchify(Tensor x, int patch, Tensor image)
    {
        Activations("Unpatchify", x, image);
        var g = Check.Unpatchify(x, patch, image);
        int total = Total(image.Count, "Unpatchify");
        if (total > 0)
            Launch(ElementwiseGrid(total), ElementwiseBlock, new UnpatchifyArgs { X = x.Address, Image = image.Address,
                Channels = g.Channels, Height = g.Height, Width = g.Width, Patch = patch, Total = total });
    }
}

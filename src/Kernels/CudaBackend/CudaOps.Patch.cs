using BlockDance.Runtime;

namespace BlockDance.Kernels.Cuda;

// patch.cu: patchify (im2col of the patch embedding) and unpatchify, one thread per image element. The two kernels
// share their parameter list (PatchArgs) and launch configuration.
public sealed partial class CudaOps
{
    private struct PatchArgs
    {
        public nint Src, Dst;
        public int Channels, Height, Width, Patch, Total;
    }

    private interface IPatchKernel<TSelf> : IKernelArgs where TSelf : unmanaged
    {
        static abstract TSelf Of(PatchArgs args);
    }

    [Kernel(KernelModule.Patch, "patchify")]
    private struct PatchifyArgs : IPatchKernel<PatchifyArgs> { public PatchArgs Args; public static PatchifyArgs Of(PatchArgs args) => new() { Args = args }; }

    [Kernel(KernelModule.Patch, "unpatchify")]
    private struct UnpatchifyArgs : IPatchKernel<UnpatchifyArgs> { public PatchArgs Args; public static UnpatchifyArgs Of(PatchArgs args) => new() { Args = args }; }

    /// <inheritdoc/>
    public void Patchify(Tensor image, int patch, Tensor cols)
    {
        Activations("Patchify", image, cols);
        LaunchPatches<PatchifyArgs>("Patchify", image.Address, cols.Address, Check.Patchify(image, patch, cols));
    }

    /// <inheritdoc/>
    public void Unpatchify(Tensor x, int patch, Tensor image)
    {
        Activations("Unpatchify", x, image);
        LaunchPatches<UnpatchifyArgs>("Unpatchify", x.Address, image.Address, Check.Unpatchify(x, patch, image));
    }

    private void LaunchPatches<TArgs>(string op, nint src, nint dst, Check.PatchGeometry g) where TArgs : unmanaged, IPatchKernel<TArgs>
    {
        int total = Total((long)g.Batch * g.Channels * g.Height * g.Width, op);
        if (total > 0)
            Launch(ElementwiseGrid(total), ElementwiseBlock, TArgs.Of(new PatchArgs { Src = src, Dst = dst,
                Channels = g.Channels, Height = g.Height, Width = g.Width, Patch = g.Patch, Total = total }));
    }
}

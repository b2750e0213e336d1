using BlockDance.Runtime;

namespace BlockDance.Kernels.Cuda;

// sampling.cu: classifier-free guidance and the sampler updates.
public sealed partial class CudaOps
{
    [Kernel(KernelModule.Sampling, "guidance_combine")]
    private struct GuidanceCombineArgs : IKernelArgs
    {
        public nint Output, Y;
        public int Item, Guided;
        public float Scale;
        public int Total;
    }

    [Kernel(KernelModule.Sampling, "ddim_step")]
    private struct DdimStepArgs : IKernelArgs
    {
        public nint X, Output, Noise;
        public int Item, OutItem;
        public float A, B, C, D, E;
        public int RederiveEps, Total;
    }

    [Kernel(KernelModule.Sampling, "ancestral_step")]
    private struct AncestralStepArgs : IKernelArgs
    {
        public nint X, Output, Noise;
        public int Item;
        public float A, B, C1, C2, MinLog, MaxLog, Nonzero;
        public int Total;
    }

    /// <inheritdoc/>
    public void GuidanceCombine(Tensor output, int guidedChannels, float scale, Tensor y)
    {
        Activations("GuidanceCombine", output, y);
        var (_, c, plane) = Check.GuidanceCombine(output, guidedChannels, y);
        Total(output.Count, "GuidanceCombine");
        int total = (int)y.Count;
        if (total > 0)
            Launch(ElementwiseGrid(total), ElementwiseBlock, new GuidanceCombineArgs { Output = output.Address, Y = y.Address,
                Item = c * plane, Guided = guidedChannels * plane, Scale = scale, Total = total });
    }

    /// <inheritdoc/>
    public void DdimStep(Tensor x, Tensor modelOutput, float a, float b, float c, float d, float e, bool rederiveEps, Tensor? noise)
    {
        var (channels, plane, total) = SamplerOperands("DdimStep", x, modelOutput, noise, 1, exactChannels: false);
        if (noise is null && e != 0)
            throw new ArgumentException("DdimStep: noise is required when the noise coefficient is not zero");
        if (total > 0)
            Launch(ElementwiseGrid(total), ElementwiseBlock, new DdimStepArgs { X = x.Address, Output = modelOutput.Address, Noise = noise?.Address ?? 0,
                Item = channels * plane, OutItem = modelOutput.Dim(1) * plane, A = a, B = b, C = c, D = d, E = e, RederiveEps = rederiveEps ? 1 : 0, Total = total });
    }

    /// <inheritdoc/>
    public void AncestralStep(Tensor x, Tensor modelOutput, float a, float b, float c1, float c2, float minLog, float maxLog, float nonzero, Tensor? noise)
    {
        var (channels, plane, total) = SamplerOperands("AncestralStep", x, modelOutput, noise, 2, exactChannels: true);
        if (noise is null && nonzero != 0)
            throw new ArgumentException("AncestralStep: noise is required except at the last step");
        if (total > 0)
            Launch(ElementwiseGrid(total), ElementwiseBlock, new AncestralStepArgs { X = x.Address, Output = modelOutput.Address, Noise = noise?.Address ?? 0,
                Item = channels * plane, A = a, B = b, C1 = c1, C2 = c2, MinLog = minLog, MaxLog = maxLog, Nonzero = nonzero, Total = total });
    }

    private (int Channels, int Plane, int Total) SamplerOperands(string op, Tensor x, Tensor modelOutput, Tensor? noise, int factor, bool exactChannels)
    {
        Activations(op, x, modelOutput);
        if (noise is not null)
            Activations(op, noise);
        var (_, channels, plane) = Check.SamplerShapes(x, modelOutput, noise, factor, op, exactChannels);
        Total(modelOutput.Count, op);
        return (channels, plane, (int)x.Count);
    }
}

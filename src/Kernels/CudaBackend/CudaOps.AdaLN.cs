using BlockDance.Runtime;

namespace BlockDance.Kernels.Cuda;

// adaln.cu: LayerNorm with adaLN modulation, gated residual.
public sealed partial class CudaOps
{
    /// <summary>Most threads per block of the LayerNorm (one block per row).</summary>
    private const uint LayerNormMaxBlock = 256;

    [Kernel(KernelModule.AdaLN, "layernorm_modulate")]
    private struct LayerNormModulateArgs : IKernelArgs
    {
        public nint X, Mod, Y;
        public int Tokens, D, ModStride, ShiftOff, ScaleOff;
        public float Eps;
    }

    [Kernel(KernelModule.AdaLN, "gated_residual_add")]
    private struct GatedResidualAddArgs : IKernelArgs
    {
        public nint X, H, Mod;
        public int Total, RowBlock, D, ModStride, GateOff;
    }

    /// <inheritdoc/>
    public void LayerNormModulate(Tensor x, Tensor mod, int shiftChunk, int scaleChunk, float eps, Tensor y)
    {
        Activations("LayerNormModulate", x, mod, y);
        var (batch, tokens, d) = Check.Btd(x, "LayerNormModulate");
        Check.SameCount(x, y, "LayerNormModulate");
        int chunks = Check.Modulation(mod, batch, d, "LayerNormModulate", shiftChunk, scaleChunk);
        Total(x.Count, "LayerNormModulate");
        int rows = batch * tokens;
        if (rows == 0 || d == 0)
            return;
        // One block per row; at most 256 threads, fewer (a multiple of 32, for the block reduction) for short rows.
        uint block = Math.Min(LayerNormMaxBlock, (uint)(d + 31) / 32 * 32);
        Launch((uint)rows, block, new LayerNormModulateArgs { X = x.Address, Mod = mod.Address, Y = y.Address, Tokens = tokens, D = d,
            ModStride = chunks * d, ShiftOff = shiftChunk * d, ScaleOff = scaleChunk * d, Eps = eps });
    }

    /// <inheritdoc/>
    public void GatedResidualAdd(Tensor x, Tensor h, Tensor mod, int gateChunk)
    {
        Activations("GatedResidualAdd", x, h, mod);
        var (batch, tokens, d) = Check.Btd(x, "GatedResidualAdd");
        Check.SameCount(x, h, "GatedResidualAdd");
        int chunks = Check.Modulation(mod, batch, d, "GatedResidualAdd", gateChunk, gateChunk);
        int total = Total(x.Count, "GatedResidualAdd");
        if (total > 0)
            Launch(ElementwiseGrid(total), ElementwiseBlock, new GatedResidualAddArgs { X = x.Address, H = h.Address, Mod = mod.Address,
                Total = total, RowBlock = tokens * d, D = d, ModStride = chunks * d, GateOff = gateChunk * d });
    }
}

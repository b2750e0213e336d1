using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;

namespace BlockDance.Kernels.Cuda;

// softmax.cu: Attention as two strided-batched GEMMs over the heads around the softmax.
public sealed partial class CudaOps
{
    /// <summary>Threads per block of the softmax: 4 warps, one row each.</summary>
    private const uint SoftmaxBlock = 128;

    [Kernel(KernelModule.Softmax, "softmax")]
    private struct SoftmaxArgs : IKernelArgs
    {
        public nint Scores, Probs;
        public int Rows, Cols;
    }

    /// <summary>
    /// For each batch item b, straight out of the packed qkv buffer (row t of item b holds q | k | v, head h at column
    /// h·Dh of each): in column-major terms Q_h, K_h and V_h are Dh×T matrices with leading dimension 3D, head h at
    /// element offset h·Dh, so the heads are one strided batch (stride Dh).
    /// <list type="number">
    /// <item>S_h (T×T, column-major, ld T) = scale·K_hᵀ·Q_h, i.e. S_h[s + t·T] = scale·Σ_d k[s,d]·q[t,d]: row t of the
    ///   row-major view holds query t's scores over the keys. float32 (<c>GemmStridedBatchedEx(T, N, m=T, n=T, k=Dh)</c>).</item>
    /// <item>P = softmax over each of those H·T rows, in the storage type (in place for F32).</item>
    /// <item>O_h (Dh×T, ld D, at y + b·T·D + h·Dh) = V_h·P_h: O[d + t·D] = Σ_s v[s,d]·p[t,s]
    ///   (<c>GemmStridedBatchedEx(N, N, m=Dh, n=T, k=T)</c>); the heads land concatenated in y.</item>
    /// </list>
    /// The workspace holds one item's scores (H·T² floats) and probabilities.
    /// </summary>
    public void Attention(Tensor qkv, int heads, Tensor y)
    {
        Activations("Attention", qkv, y);
        var (batch, tokens, d, dh) = Check.Attention(qkv, heads, y);
        if (batch == 0 || tokens == 0 || d == 0)
            return;
        long scoresCount = (long)heads * tokens * tokens;
        if (scoresCount > int.MaxValue)
            throw new ArgumentException($"Attention: {heads} heads × {tokens}² scores exceed 2^31 − 1 elements");
        var type = ActivationType;
        int elem = type.SizeOf();
        long scoresBytes = scoresCount * sizeof(float);
        long probsOffset = type == DType.F32 ? 0 : (scoresBytes + 255) / 256 * 256;
        nint scores = Workspace(probsOffset + (type == DType.F32 ? scoresBytes : scoresCount * elem));
        nint probs = scores + (nint)probsOffset;
        int ld = 3 * d, rows = heads * tokens;
        long tokenSquare = (long)tokens * tokens;
        // Every device address below is inside qkv, y or the workspace, whose sizes were checked (qkv [B, T, 3D],
        // y [B, T, D]) or allocated (H·T² scores) above.
        for (int b = 0; b < batch; b++)
        {
            nint q = qkv.Address + (nint)((long)b * tokens * 3 * d * elem);
            nint k = q + (nint)((long)d * elem), v = q + (nint)(2L * d * elem);
            nint o = y.Address + (nint)((long)b * tokens * d * elem);
            _device.GemmStridedBatched(GemmOp.T, GemmOp.N, tokens, tokens, dh, 1f / MathF.Sqrt(dh),
                new(k, type, ld, dh), new(q, type, ld, dh), 0f, new(scores, DType.F32, tokens, tokenSquare), heads);
            Launch((uint)((rows + SoftmaxBlock / 32 - 1) / (SoftmaxBlock / 32)), SoftmaxBlock,
                new SoftmaxArgs { Scores = scores, Probs = probs, Rows = rows, Cols = tokens });
            _device.GemmStridedBatched(GemmOp.N, GemmOp.N, dh, tokens, tokens, 1f,
                new(v, type, ld, dh), new(probs, type, tokens, tokenSquare), 0f, new(o, type, d, dh), heads);
        }
    }
}

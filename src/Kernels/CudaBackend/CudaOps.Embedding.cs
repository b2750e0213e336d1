using BlockDance.Runtime;

namespace BlockDance.Kernels.Cuda;

// embedding.cu: position embedding, timestep features, class-label table lookup.
public sealed partial class CudaOps
{
    [Kernel(KernelModule.Embedding, "add_position_embedding")]
    private struct AddPositionEmbeddingArgs : IKernelArgs
    {
        public nint X, Pos;
        public int PerItem, Total;
    }

    [Kernel(KernelModule.Embedding, "timestep_embedding")]
    private struct TimestepEmbeddingArgs : IKernelArgs
    {
        public nint T, Y;
        public int Half, Shift, Total;
    }

    [Kernel(KernelModule.Embedding, "embedding_lookup")]
    private struct EmbeddingLookupArgs : IKernelArgs
    {
        public nint Table, Ids, Y;
        public int Vocab, D, Total;
    }

    /// <inheritdoc/>
    public void AddPositionEmbedding(Tensor x, Tensor pos)
    {
        Activations("AddPositionEmbedding", x, pos);
        var (_, tokens, d) = Check.PositionEmbedding(x, pos);
        int total = Total(x.Count, "AddPositionEmbedding");
        if (total > 0)
            Launch(ElementwiseGrid(total), ElementwiseBlock, new AddPositionEmbeddingArgs { X = x.Address, Pos = pos.Address, PerItem = tokens * d, Total = total });
    }

    /// <inheritdoc/>
    public void TimestepEmbedding(Tensor t, int frequencyShift, Tensor y)
    {
        OnDevice("TimestepEmbedding", t);
        Activations("TimestepEmbedding", y);
        var (batch, half) = Check.TimestepEmbedding(t, frequencyShift, y);
        int total = Total((long)batch * half, "TimestepEmbedding");   // one thread per (b, i): cos and sin
        if (total > 0)
            Launch(ElementwiseGrid(total), ElementwiseBlock, new TimestepEmbeddingArgs { T = t.Address, Y = y.Address, Half = half, Shift = frequencyShift, Total = total });
    }

    /// <summary>The ids stay on the device (checking them would need a synchronizing download); an id outside
    /// [0, V) yields a NaN row instead of an out-of-bounds read (embedding.cu).</summary>
    public void EmbeddingLookup(Tensor table, Tensor ids, Tensor y)
    {
        Activations("EmbeddingLookup", table, y);
        OnDevice("EmbeddingLookup", ids);
        var (vocab, d, _) = Check.EmbeddingLookup(table, ids, y);
        Total(table.Count, "EmbeddingLookup");
        int total = Total(y.Count, "EmbeddingLookup");
        if (total > 0)
            Launch(ElementwiseGrid(total), ElementwiseBlock, new EmbeddingLookupArgs { Table = table.Address, Ids = ids.Address, Y = y.Address, Vocab = vocab, D = d, Total = total });
    }
}

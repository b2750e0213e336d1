using BlockDance.Runtime;

namespace BlockDance.Kernels;

/// <summary>Shape and type checks shared by every backend's launchers; messages name the op and the shapes.</summary>
internal static class Check
{
    public static void F32(params ReadOnlySpan<Tensor> tensors) => Type(DType.F32, tensors);

    public static void Type(DType type, params ReadOnlySpan<Tensor> tensors)
    {
        foreach (var t in tensors)
            if (t.DType != type)
                throw new ArgumentException($"expected {type} tensors, got {t}");
    }

    public static void Rank(Tensor t, int rank, string name)
    {
        if (t.Rank != rank)
            throw new ArgumentException($"{name} {t.ShapeString} must have rank {rank}");
    }

    public static void SameCount(Tensor a, Tensor b, string op)
    {
        if (a.Count != b.Count)
            throw new ArgumentException($"{op}: {a.ShapeString} and {b.ShapeString} differ in size");
    }

    /// <summary>Reads (B, T, D) from a rank-3 tensor.</summary>
    public static (int B, int T, int D) Btd(Tensor x, string op) =>
        x.Rank == 3 ? (x.Dim(0), x.Dim(1), x.Dim(2)) : throw new ArgumentException($"{op}: {x.ShapeString} is not [B, T, D]");

    /// <summary>Checks that mod is [B, n·D] and the chunks exist; returns n.</summary>
    public static int Modulation(Tensor mod, int batch, int d, string op, int chunkA, int chunkB)
    {
        if (mod.Rank != 2 || mod.Dim(0) != batch || mod.Dim(1) % d != 0)
            throw new ArgumentException($"{op}: modulation {mod.ShapeString} is not [{batch}, n·{d}]");
        int chunks = mod.Dim(1) / d;
        if (chunkA < 0 || chunkA >= chunks || chunkB < 0 || chunkB >= chunks)
            throw new ArgumentException($"{op}: chunk {chunkA}/{chunkB} outside the {chunks} chunks of {mod.ShapeString}");
        return chunks;
    }

    public static void Patch(int h, int w, int patch, string op)
    {
        if (patch <= 0 || h % patch != 0 || w % patch != 0)
            throw new ArgumentException($"{op}: {h}×{w} is not divisible by the patch size {patch}");
    }

    /// <summary>
    /// x: [n, C, H, W]; noise (optional) like x; modelOutput: [n, C', H, W] with C' ≥ C (DDIM reads ε from the first C
    /// channels) or, with <paramref name="exactChannels"/>, C' = 2C exactly (ancestral: ε then v). Returns (n, C, H·W).
    /// </summary>
    public static (int N, int C, int Plane) SamplerShapes(Tensor x, Tensor modelOutput, Tensor? noise, int factor, string op, bool exactChannels = false)
    {
        Rank(x, 4, "x");
        Rank(modelOutput, 4, "model output");
        int n = x.Dim(0), c = x.Dim(1), h = x.Dim(2), w = x.Dim(3);
        bool channelsOk = exactChannels ? modelOutput.Dim(1) == c * factor : modelOutput.Dim(1) >= c * factor;
        if (modelOutput.Dim(0) != n || !channelsOk || modelOutput.Dim(2) != h || modelOutput.Dim(3) != w)
            throw new ArgumentException($"{op}: model output {modelOutput.ShapeString} does not match x {x.ShapeString} (needs {(exactChannels ? "exactly" : "at least")} {c * factor} channels)");
        if (noise is not null && !noise.HasShape(n, c, h, w))
            throw new ArgumentException($"{op}: noise {noise.ShapeString} does not match x {x.ShapeString}");
        return (n, c, h * w);
    }

    // ---- The shape contract of each op (IOps documents them); every backend calls these, so they agree. ----------

    /// <summary>y[M,N] = x[M,K]·w[N,K]ᵀ (+ b[N]); returns (M, N, K).</summary>
    public static (int M, int N, int K) Linear(Tensor x, Tensor w, Tensor? b, Tensor y)
    {
        Rank(w, 2, "w");
        int n = w.Dim(0), k = w.Dim(1);
        if (k == 0 || x.Dim(-1) != k || x.Count % k != 0)
            throw new ArgumentException($"Linear: x {x.ShapeString} does not end in K = {k} of w {w.ShapeString}");
        long m = x.Count / k;
        if (m > int.MaxValue)
            throw new ArgumentException($"Linear: x {x.ShapeString} has more than 2^31 − 1 rows");
        if (y.Count != m * n || y.Dim(-1) != n)
            throw new ArgumentException($"Linear: y {y.ShapeString} is not [{m}, {n}] for x {x.ShapeString}, w {w.ShapeString}");
        if (b is not null && b.Count != n)
            throw new ArgumentException($"Linear: bias {b.ShapeString} does not have N = {n} elements");
        return ((int)m, n, k);
    }

    /// <summary>qkv [B, T, 3D] → y [B, T, D] with D divisible by the heads; returns (B, T, D, Dh).</summary>
    public static (int B, int T, int D, int Dh) Attention(Tensor qkv, int heads, Tensor y)
    {
        var (batch, tokens, d3) = Btd(qkv, "Attention");
        if (d3 % 3 != 0 || heads <= 0 || d3 / 3 % heads != 0)
            throw new ArgumentException($"Attention: qkv {qkv.ShapeString} is not [B, T, 3·D] with D divisible by {heads} heads");
        int d = d3 / 3;
        if (!y.HasShape(batch, tokens, d))
            throw new ArgumentException($"Attention: y {y.ShapeString} should be [{batch}, {tokens}, {d}]");
        return (batch, tokens, d, d / heads);
    }

    /// <summary>The geometry shared by patchify and unpatchify: image [B, C, H, W] and tokens [B, T, perToken].</summary>
    public readonly record struct PatchGeometry(int Batch, int Channels, int Height, int Width, int Patch, int GridWidth, int Tokens, int PerToken);

    /// <summary>image [B, C, H, W] → cols [B, T, C·p·p].</summary>
    public static PatchGeometry Patchify(Tensor image, int patch, Tensor cols) => Patches(image, patch, cols, "Patchify", "cols");

    /// <summary>x [B, T, p·p·C] → image [B, C, H, W].</summary>
    public static PatchGeometry Unpatchify(Tensor x, int patch, Tensor image) => Patches(image, patch, x, "Unpatchify", "x");

    private static PatchGeometry Patches(Tensor image, int patch, Tensor tokens, string op, string name)
    {
        Rank(image, 4, "image");
        int batch = image.Dim(0), c = image.Dim(1), h = image.Dim(2), w = image.Dim(3);
        Patch(h, w, patch, op);
        int gw = w / patch, t = h / patch * gw, k = c * patch * patch;
        if (!tokens.HasShape(batch, t, k))
            throw new ArgumentException($"{op}: {name} {tokens.ShapeString} should be [{batch}, {t}, {k}] for image {image.ShapeString}");
        return new PatchGeometry(batch, c, h, w, patch, gw, t, k);
    }

    /// <summary>x [B, T, D] += pos [T, D]; returns (B, T, D).</summary>
    public static (int B, int T, int D) PositionEmbedding(Tensor x, Tensor pos)
    {
        var btd = Btd(x, "AddPositionEmbedding");
        if (pos.Count != (long)btd.T * btd.D)
            throw new ArgumentException($"AddPositionEmbedding: pos {pos.ShapeString} is not [{btd.T}, {btd.D}]");
        return btd;
    }

    /// <summary>x [B, P, Q, D] → y [B, Q, P, D], not overlapping; returns (B, P, Q, D).</summary>
    public static (int B, int P, int Q, int D) SwapFrameTokenAxes(Tensor x, Tensor y)
    {
        Rank(x, 4, "SwapFrameTokenAxes: x");
        int b = x.Dim(0), p = x.Dim(1), q = x.Dim(2), d = x.Dim(3);
        if (!y.HasShape(b, q, p, d))
            throw new ArgumentException($"SwapFrameTokenAxes: y {y.ShapeString} should be [{b}, {q}, {p}, {d}] for x {x.ShapeString}");
        if (x.Count > 0 && x.Address < y.Address + (nint)y.ByteCount && y.Address < x.Address + (nint)x.ByteCount)
            throw new ArgumentException($"SwapFrameTokenAxes: y {y.ShapeString} overlaps x {x.ShapeString}; the swap is out of place");
        return (b, p, q, d);
    }

    /// <summary>t [B] F32 → y [B, dim], dim even and half − shift positive; returns (B, half).</summary>
    public static (int B, int Half) TimestepEmbedding(Tensor t, int frequencyShift, Tensor y)
    {
        Type(DType.F32, t);
        Rank(y, 2, "y");
        int batch = y.Dim(0), dim = y.Dim(1);
        if (t.Count != batch || dim % 2 != 0 || dim / 2 - frequencyShift <= 0)
            throw new ArgumentException($"TimestepEmbedding: t {t.ShapeString}, y {y.ShapeString} (dim must be even), shift {frequencyShift}");
        return (batch, dim / 2);
    }

    /// <summary>table [V, D], ids [B] I32 → y [B, D]; returns (V, D, B).</summary>
    public static (int V, int D, int B) EmbeddingLookup(Tensor table, Tensor ids, Tensor y)
    {
        Rank(table, 2, "table");
        if (ids.DType != DType.I32)
            throw new ArgumentException($"EmbeddingLookup: ids must be I32, not {ids.DType}");
        int vocab = table.Dim(0), d = table.Dim(1), batch = checked((int)ids.Count);
        if (!y.HasShape(batch, d))
            throw new ArgumentException($"EmbeddingLookup: y {y.ShapeString} should be [{batch}, {d}]");
        return (vocab, d, batch);
    }

    /// <summary>x and reference [B, …] of one shape, result F32 [B]; returns (B, elements per item).</summary>
    public static (int B, int PerItem) RelativeL1(Tensor x, Tensor reference, Tensor result)
    {
        if (x.Rank == 0 || !x.HasShape(reference.Shape))
            throw new ArgumentException($"RelativeL1: x {x.ShapeString} and reference {reference.ShapeString} must have one shape [B, …]");
        if (result.DType != DType.F32 || result.Count != x.Dim(0))
            throw new ArgumentException($"RelativeL1: result {result} must be F32 with B = {x.Dim(0)} elements");
        long perItem = x.Count / Math.Max(1, x.Dim(0));
        if (perItem > int.MaxValue)
            throw new ArgumentException($"RelativeL1: {perItem} elements per item exceed 2^31 − 1");
        return (x.Dim(0), (int)perItem);
    }

    /// <summary>output [2n, C, H, W] → y [n, C, H, W], 0 ≤ guided ≤ C; returns (n, C, H·W).</summary>
    public static (int N, int C, int Plane) GuidanceCombine(Tensor output, int guidedChannels, Tensor y)
    {
        Rank(output, 4, "output");
        int n2 = output.Dim(0), c = output.Dim(1), n = n2 / 2;
        if (n2 % 2 != 0 || !y.HasShape(n, c, output.Dim(2), output.Dim(3)))
            throw new ArgumentException($"GuidanceCombine: output {output.ShapeString} must be [2n, C, H, W] and y {y.ShapeString} [n, C, H, W]");
        if (guidedChannels < 0 || guidedChannels > c)
            throw new ArgumentException($"GuidanceCombine: {guidedChannels} guided channels of {c}");
        return (n, c, output.Dim(2) * output.Dim(3));
    }
}

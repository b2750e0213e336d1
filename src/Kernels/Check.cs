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

    /// <summary>x: [n, C, H, W]; modelOutput: [n, C·factor or more, H, W]; noise (optional) like x. Returns (n, C, H·W).</summary>
    public static (int N, int C, int Plane) SamplerShapes(Tensor x, Tensor modelOutput, Tensor? noise, int factor, string op)
    {
        Rank(x, 4, "x");
        Rank(modelOutput, 4, "model output");
        int n = x.Dim(0), c = x.Dim(1), h = x.Dim(2), w = x.Dim(3);
        if (modelOutput.Dim(0) != n || modelOutput.Dim(1) < c * factor || modelOutput.Dim(2) != h || modelOutput.Dim(3) != w)
            throw new ArgumentException($"{op}: model output {modelOutput.ShapeString} does not match x {x.ShapeString} (needs ≥ {c * factor} channels)");
        if (noise is not null && !noise.HasShape(n, c, h, w))
            throw new ArgumentException($"{op}: noise {noise.ShapeString} does not match x {x.ShapeString}");
        return (n, c, h * w);
    }
}

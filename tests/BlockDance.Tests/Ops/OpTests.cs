using BlockDance.Kernels;
using BlockDance.Runtime;
using Xunit;

namespace BlockDance.Tests.Ops;

/// <summary>
/// Every op of <see cref="IOps"/> against the naive <see cref="Reference"/>, on odd shapes and on DiT shapes, in the
/// style of ggml's test-backend-ops: inputs from a fixed seed, outputs surrounded by guard regions that must come back
/// untouched, NaN/Inf checks, and a tolerance stated per storage type. A backend gets these tests by subclassing.
/// </summary>
public abstract class OpTests : IDisposable
{
    private const int Guard = 37; // elements of sentinel on each side of every output
    private static readonly float Sentinel = BitConverter.Int32BitsToSingle(0x7FC0DEAD);
    private readonly List<Tensor> _guarded = [];

    protected OpTests(IOps ops) => Ops = ops;

    protected IOps Ops { get; }
    protected Device Dev => Ops.Device;

    /// <summary>Largest allowed max|a−b|/max|b| for an op's output; fp32 tight, 16-bit types by their precision.</summary>
    protected virtual double Tolerance => Ops.ActivationType switch
    {
        DType.F32 => 2e-5,
        DType.F16 => 4e-3,
        _ => 3e-2,
    };

    /// <summary>
    /// Largest allowed |backend − <see cref="Philox.Normal"/>| per sample in the RandomNormal test: 0 (bit-identical)
    /// where the backend uses the same math library as .NET (the CPU device, the CUDA emulator); a GPU's accurate
    /// logf/sinf/cosf differ from glibc's in the last ulps.
    /// </summary>
    protected virtual float RandomNormalTolerance => 0f;

    protected Tensor Input(float[] values, params int[] shape) => Dev.FromFloats(values, Ops.ActivationType, shape);

    /// <summary>An output tensor with sentinel guard regions on both sides (checked by <see cref="Read"/>).</summary>
    protected Tensor Output(params int[] shape)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        var whole = Dev.FromFloats(Enumerable.Repeat(Sentinel, (int)n + 2 * Guard).ToArray(), Ops.ActivationType, (int)n + 2 * Guard);
        _guarded.Add(whole);
        return whole.View(Guard, shape);
    }

    /// <summary>The output's values, after checking its guards and that it holds no NaN or infinity.</summary>
    protected float[] Read(Tensor output)
    {
        var whole = _guarded.Single(g => output.Address >= g.Address && output.Address < g.Address + (nint)g.ByteCount);
        var all = whole.ToFloatArray();
        long offset = (output.Address - whole.Address) / output.DType.SizeOf();
        for (long i = 0; i < all.Length; i++)
        {
            bool inside = i >= offset && i < offset + output.Count;
            if (!inside && BitConverter.SingleToInt32Bits(all[i]) != BitConverter.SingleToInt32Bits(AsStored(Sentinel)))
                Assert.Fail($"guard region overwritten at element {i - offset} relative to the output {output.ShapeString}");
            if (inside && !float.IsFinite(all[i]))
                Assert.Fail($"non-finite output {all[i]} at element {i - offset} of {output.ShapeString}");
        }
        return all.AsSpan((int)offset, (int)output.Count).ToArray();
    }

    private float AsStored(float v) => Dev.FromFloats([v], Ops.ActivationType, 1) is var t ? Take(t) : v;

    private static float Take(Tensor t)
    {
        using (t)
            return t.ToFloatArray()[0];
    }

    /// <summary>
    /// Two criteria: the dump comparison max|a−b| / max|ref| ≤ tol, and per element |a−b| ≤ tol·(rms(ref) + |ref|)
    /// (habit 1's atol + rtol·|ref| with atol scaled to the data), so a small element with the wrong sign fails too.
    /// </summary>
    protected void AssertClose(float[] expected, float[] actual, string what, double? tolerance = null)
    {
        var (rel, report) = Reference.Compare(actual, expected);
        double tol = tolerance ?? Tolerance;
        Assert.True(rel <= tol, $"{what}: {report}; tolerance {tol:E1} ({rel / tol:P0} used)");
        double rms = expected.Length == 0 ? 0 : Math.Sqrt(expected.Average(v => (double)v * v));
        for (int i = 0; i < expected.Length; i++)
        {
            double diff = Math.Abs((double)actual[i] - expected[i]), bound = tol * (rms + Math.Abs(expected[i]));
            if (diff > bound)
                Assert.Fail($"{what}: element {i} is {actual[i]}, expected {expected[i]} (|diff| {diff:E3} > {bound:E3} = tol·(rms {rms:E3} + |ref|))");
        }
    }

    /// <summary>Inputs rounded to the backend's storage type, so the reference sees exactly what the backend sees.</summary>
    protected float[] Stored(float[] values)
    {
        using var t = Dev.FromFloats(values, Ops.ActivationType, values.Length);
        return t.ToFloatArray();
    }

    // The last shapes are above the CPU device's inline limit (2^20 floats), so their epilogue and norms run split over threads.
    public static TheoryData<int, int, int> LinearShapes => new() { { 5, 7, 11 }, { 1, 13, 3 }, { 37, 64, 48 }, { 512, 384, 384 }, { 1031, 1100, 16 } };

    [Theory]
    [MemberData(nameof(LinearShapes))]
    public void Linear_matches_reference(int m, int n, int k)
    {
        var x = Stored(Reference.Random(m * k, 1)); var w = Stored(Reference.Random(n * k, 2, 0.2f)); var b = Stored(Reference.Random(n, 3));
        using var xt = Input(x, m, k); using var wt = Input(w, n, k); using var bt = Input(b, n);
        var y = Output(m, n);
        Ops.Linear(xt, wt, bt, y);
        AssertClose(Reference.Linear(x, w, b, m, n, k), Read(y), $"Linear {m}x{n}x{k}");
        var y2 = Output(m, n);
        Ops.Linear(xt, wt, null, y2);
        AssertClose(Reference.Linear(x, w, null, m, n, k), Read(y2), $"Linear without bias {m}x{n}x{k}");
    }

    [Theory]
    [InlineData(Activation.GeluTanh, 5, 7, 11)]
    [InlineData(Activation.GeluTanh, 64, 1536, 384)]
    [InlineData(Activation.Silu, 3, 17, 256)]
    public void Linear_with_activation_matches_reference(Activation act, int m, int n, int k)
    {
        var x = Stored(Reference.Random(m * k, 4)); var w = Stored(Reference.Random(n * k, 5, 0.3f)); var b = Stored(Reference.Random(n, 6));
        using var xt = Input(x, m, k); using var wt = Input(w, n, k); using var bt = Input(b, n);
        var y = Output(m, n);
        Ops.Linear(xt, wt, bt, y, act);
        Func<double, double> f = act == Activation.GeluTanh ? Reference.GeluTanh : Reference.Silu;
        AssertClose(Reference.Linear(x, w, b, m, n, k, f), Read(y), $"Linear+{act}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(385)]
    [InlineData(100_003)]
    public void Silu_matches_reference(int n)
    {
        var x = Stored(Reference.Random(n, 7, 8f));
        using var xt = Input(x, n);
        var y = Output(n);
        Ops.Silu(xt, y);
        AssertClose(Reference.Map(x, Reference.Silu), Read(y), "Silu");
    }

    [Fact]
    public void Add_matches_reference()
    {
        var a = Stored(Reference.Random(5 * 7 * 11, 8)); var b = Stored(Reference.Random(5 * 7 * 11, 9));
        using var at = Input(a, 5, 7, 11); using var bt = Input(b, 5, 7, 11);
        var y = Output(5, 7, 11);
        Ops.Add(at, bt, y);
        AssertClose(a.Zip(b, (p, q) => p + q).ToArray(), Read(y), "Add");
    }

    public static TheoryData<int, int, int, float> NormShapes => new() { { 5, 7, 11, 1e-6f }, { 2, 3, 1, 1e-5f }, { 2, 256, 384, 1e-6f }, { 3, 5, 1152, 1e-5f }, { 2, 520, 1031, 1e-6f } };

    [Theory]
    [MemberData(nameof(NormShapes))]
    public void LayerNormModulate_matches_reference(int b, int t, int d, float eps)
    {
        // Offsets and scales make mean and variance matter (a LayerNorm that forgets to centre fails).
        var x = Stored(Reference.Random(b * t * d, 10, 3f).Select((v, i) => v * (1 + i % 5) + 2f).ToArray());
        var mod = Stored(Reference.Random(b * 6 * d, 11, 0.5f));
        using var xt = Input(x, b, t, d); using var mt = Input(mod, b, 6 * d);
        var y = Output(b, t, d);
        Ops.LayerNormModulate(xt, mt, 3, 4, eps, y);
        AssertClose(Reference.LayerNormModulate(x, mod, b, t, d, 6, 3, 4, eps), Read(y), $"LayerNormModulate {b}x{t}x{d}");
    }

    [Theory]
    [InlineData(5, 7, 11)]
    [InlineData(2, 256, 384)]
    [InlineData(2, 520, 1031)]
    public void GatedResidualAdd_matches_reference(int b, int t, int d)
    {
        var x = Stored(Reference.Random(b * t * d, 12)); var h = Stored(Reference.Random(b * t * d, 13)); var mod = Stored(Reference.Random(b * 6 * d, 14));
        using var ht = Input(h, b, t, d); using var mt = Input(mod, b, 6 * d);
        var xt = Output(b, t, d);
        using (var src = Input(x, b, t, d)) Dev.Copy(src, xt);
        Ops.GatedResidualAdd(xt, ht, mt, 5);
        AssertClose(Reference.GatedAdd(x, h, mod, b, t, d, 6, 5), Read(xt), "GatedResidualAdd");
    }

    public static TheoryData<int, int, int, int> AttentionShapes => new() { { 1, 5, 12, 3 }, { 2, 7, 22, 2 }, { 3, 17, 8, 1 }, { 2, 256, 384, 6 }, { 1, 64, 1152, 16 } };

    [Theory]
    [MemberData(nameof(AttentionShapes))]
    public void Attention_matches_reference(int b, int t, int d, int heads)
    {
        var qkv = Stored(Reference.Random(b * t * 3 * d, 15, 2f));
        using var qt = Input(qkv, b, t, 3 * d);
        var y = Output(b, t, d);
        Ops.Attention(qt, heads, y);
        AssertClose(Reference.Attention(qkv, b, t, d, heads), Read(y), $"Attention B{b} T{t} D{d} H{heads}");
    }

    [Theory]
    [InlineData(2, 3, 10, 14, 2, 7)]
    [InlineData(1, 4, 8, 8, 4, 5)]
    [InlineData(2, 4, 32, 32, 2, 384)]
    public void Patch_embedding_as_im2col_and_linear_matches_a_direct_convolution(int b, int c, int h, int w, int p, int d)
    {
        var img = Stored(Reference.Random(b * c * h * w, 16)); var wt = Stored(Reference.Random(d * c * p * p, 17, 0.3f)); var bias = Stored(Reference.Random(d, 18));
        int t = h / p * (w / p);
        using var it = Input(img, b, c, h, w); using var wtt = Input(wt, d, c * p * p); using var bt = Input(bias, d);
        var cols = Output(b, t, c * p * p);
        Ops.Patchify(it, p, cols);
        var y = Output(b, t, d);
        Ops.Linear(cols, wtt, bt, y);
        AssertClose(Reference.PatchConv(img, wt, bias, b, c, h, w, p, d), Read(y), "Patchify + Linear");
    }

    [Theory]
    [InlineData(2, 3, 10, 14, 2)]
    [InlineData(1, 8, 32, 32, 2)]
    [InlineData(3, 6, 16, 8, 4)]
    public void Unpatchify_matches_reference(int b, int c, int h, int w, int p)
    {
        int t = h / p * (w / p);
        var x = Stored(Reference.Random(b * t * p * p * c, 19));
        using var xt = Input(x, b, t, p * p * c);
        var y = Output(b, c, h, w);
        Ops.Unpatchify(xt, p, y);
        AssertClose(Reference.Unpatchify(x, b, c, h, w, p), Read(y), "Unpatchify", tolerance: 0);
    }

    [Theory]
    [InlineData(2, 3, 5, 7)]     // odd sizes
    [InlineData(1, 8, 16, 64)]   // 8 frames of a 4×4 grid
    [InlineData(3, 16, 1, 5)]    // one token per frame
    public void SwapFrameTokenAxes_there_and_back(int b, int p, int q, int d)
    {
        var x = Stored(Reference.Random(b * p * q * d, 23));
        // The permutation by its definition, a naive loop: y[b, j, i, :] = x[b, i, j, :].
        var expected = new float[x.Length];
        for (int n = 0; n < b; n++)
            for (int i = 0; i < p; i++)
                for (int j = 0; j < q; j++)
                    for (int e = 0; e < d; e++)
                        expected[(((long)n * q + j) * p + i) * d + e] = x[(((long)n * p + i) * q + j) * d + e];
        using var xt = Input(x, b, p, q, d);
        var y = Output(b, q, p, d);
        Ops.SwapFrameTokenAxes(xt, y);
        AssertClose(expected, Read(y), "SwapFrameTokenAxes", tolerance: 0);
        var back = Output(b, p, q, d);
        Ops.SwapFrameTokenAxes(y, back);
        AssertClose(x, Read(back), "SwapFrameTokenAxes back", tolerance: 0);
    }

    [Fact]
    public void SwapFrameTokenAxes_refuses_a_wrong_shape_and_an_overlap()
    {
        using var x = Input(new float[2 * 3 * 4 * 5], 2, 3, 4, 5);
        using var wrong = Input(new float[2 * 3 * 4 * 5], 2, 3, 4, 5);
        Assert.Contains("should be [2, 4, 3, 5]", Assert.Throws<ArgumentException>(() => Ops.SwapFrameTokenAxes(x, wrong)).Message);
        Assert.Contains("overlaps", Assert.Throws<ArgumentException>(() => Ops.SwapFrameTokenAxes(x, x.Reshape(2, 4, 3, 5))).Message);
    }

    [Fact]
    public void AddPositionEmbedding_adds_the_same_rows_to_every_batch_item()
    {
        int b = 3, t = 5, d = 11;
        var x = Stored(Reference.Random(b * t * d, 20)); var pos = Stored(Reference.Random(t * d, 21));
        var xt = Output(b, t, d);
        using (var src = Input(x, b, t, d)) Dev.Copy(src, xt);
        using var pt = Input(pos, t, d);
        Ops.AddPositionEmbedding(xt, pt);
        AssertClose(x.Select((v, i) => v + pos[i % (t * d)]).ToArray(), Read(xt), "AddPositionEmbedding");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void TimestepEmbedding_matches_reference(int shift)
    {
        float[] t = [0f, 1f, 20f, 500.5f, 999f];
        using var tt = Dev.FromHost<float>(t, DType.F32, t.Length);
        var y = Output(t.Length, 256);
        Ops.TimestepEmbedding(tt, shift, y);
        // cos/sin of arguments up to 999 in float32: a one-ulp difference in a frequency moves the angle by ~6e-5.
        AssertClose(Reference.TimestepEmbedding(t, 256, shift), Read(y), $"TimestepEmbedding shift {shift}", Math.Max(Tolerance, 2e-4));
    }

    [Fact]
    public void EmbeddingLookup_copies_rows()
    {
        var table = Stored(Reference.Random(11 * 7, 22));
        int[] ids = [10, 0, 3, 10];
        using var tt = Input(table, 11, 7); using var it = Dev.FromHost<int>(ids, DType.I32, 4);
        var y = Output(4, 7);
        Ops.EmbeddingLookup(tt, it, y);
        AssertClose(ids.SelectMany(i => table.Skip(i * 7).Take(7)).ToArray(), Read(y), "EmbeddingLookup", tolerance: 0);
    }

    [Theory]
    [InlineData(3)]
    [InlineData(4)]
    public void GuidanceCombine_guides_the_first_channels_and_keeps_the_rest_from_the_conditional_half(int guided)
    {
        int n = 2, c = 8, h = 3, w = 5, plane = h * w;
        var o = Stored(Reference.Random(2 * n * c * plane, 23));
        using var ot = Input(o, 2 * n, c, h, w);
        var y = Output(n, c, h, w);
        Ops.GuidanceCombine(ot, guided, 4f, y);
        var expected = new float[n * c * plane];
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < c; ch++)
                for (int e = 0; e < plane; e++)
                {
                    double cond = o[(i * c + ch) * plane + e], uncond = o[((n + i) * c + ch) * plane + e];
                    expected[(i * c + ch) * plane + e] = (float)(ch < guided ? uncond + 4 * (cond - uncond) : cond);
                }
        AssertClose(expected, Read(y), "GuidanceCombine");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void DdimStep_matches_the_formula(bool rederive)
    {
        int n = 2, c = 4, h = 3, w = 3, count = n * c * h * w;
        var x = Stored(Reference.Random(count, 24)); var o = Stored(Reference.Random(2 * count, 25)); var z = Stored(Reference.Random(count, 26));
        var k = new DdimCoefficients(1.3f, 0.8f, 0.9f, 0.4f, 0.05f, rederive);
        var xt = Output(n, c, h, w);
        using (var src = Input(x, n, c, h, w)) Dev.Copy(src, xt);
        using var ot = Input(o, n, 2 * c, h, w); using var zt = Input(z, n, c, h, w);
        Ops.DdimStep(xt, ot, k, zt);
        var expected = new float[count];
        for (int i = 0; i < count; i++)
        {
            int item = i / (c * h * w), e = i % (c * h * w);
            double eps = o[item * 2 * c * h * w + e], x0, dir;
            if (rederive) { x0 = k.A * x[i] - k.B * eps; dir = (k.A * x[i] - x0) / k.B; }
            else { x0 = (x[i] - k.B * eps) / k.A; dir = eps; }
            expected[i] = (float)(x0 * k.C + k.D * dir + k.E * z[i]);
        }
        AssertClose(expected, Read(xt), "DdimStep");
    }

    [Fact]
    public void AncestralStep_matches_the_formula()
    {
        int n = 2, c = 4, h = 3, w = 3, count = n * c * h * w;
        var x = Stored(Reference.Random(count, 27)); var o = Stored(Reference.Random(2 * count, 28)); var z = Stored(Reference.Random(count, 29));
        var k = new AncestralCoefficients(1.2f, 0.7f, 0.3f, 0.6f, -6f, -4f, 1f);
        var xt = Output(n, c, h, w);
        using (var src = Input(x, n, c, h, w)) Dev.Copy(src, xt);
        using var ot = Input(o, n, 2 * c, h, w); using var zt = Input(z, n, c, h, w);
        Ops.AncestralStep(xt, ot, k, zt);
        var expected = new float[count];
        for (int i = 0; i < count; i++)
        {
            int item = i / (c * h * w), e = i % (c * h * w);
            double eps = o[item * 2 * c * h * w + e], v = o[item * 2 * c * h * w + c * h * w + e];
            double x0 = k.A * x[i] - k.B * eps, mean = k.C1 * x0 + k.C2 * x[i], f = (v + 1) / 2;
            expected[i] = (float)(mean + Math.Exp(0.5 * (f * k.MaxLog + (1 - f) * k.MinLog)) * z[i]);
        }
        AssertClose(expected, Read(xt), "AncestralStep");
    }

    [Fact]
    public void RandomNormal_is_a_function_of_seed_and_index_with_standard_moments()
    {
        int n = 200_001;
        using var a = Dev.Allocate(DType.F32, n);
        using var b = Dev.Allocate(DType.F32, 1001);
        Ops.RandomNormal(a, 42, 0);
        Ops.RandomNormal(b, 42, 99_000);
        var va = a.ToArray<float>(); var vb = b.ToArray<float>();
        Assert.Equal(va.AsSpan(99_000, 1001).ToArray(), vb);
        for (int i = 0; i < 64; i++)
            Assert.Equal(Philox.Normal(42, (ulong)i), va[i], RandomNormalTolerance);
        double mean = va.Average(v => (double)v), var = va.Average(v => (v - mean) * (v - mean));
        Assert.InRange(mean, -0.01, 0.01);  // 4.5 standard errors
        Assert.InRange(var, 0.985, 1.015);
        double tail = va.Count(v => Math.Abs(v) > 3) / (double)n;  // 0.27 % for a normal
        Assert.InRange(tail, 0.0020, 0.0034);
        Ops.RandomNormal(b, 43, 99_000);
        Assert.NotEqual(vb, b.ToArray<float>());
    }

    [Fact]
    public void Ops_reject_mismatched_shapes_with_a_message_naming_the_op()
    {
        using var x = Dev.Allocate(Ops.ActivationType, 2, 5, 8);
        using var w = Dev.Allocate(Ops.ActivationType, 4, 7);
        using var y = Dev.Allocate(Ops.ActivationType, 10, 4);
        var e = Assert.Throws<ArgumentException>(() => Ops.Linear(x, w, null, y));
        Assert.Contains("Linear", e.Message, StringComparison.Ordinal);
        using var mod = Dev.Allocate(Ops.ActivationType, 2, 12);  // not a whole number of D = 8 chunks
        e = Assert.Throws<ArgumentException>(() => Ops.LayerNormModulate(x, mod, 0, 1, 1e-6f, x));
        Assert.Contains("LayerNormModulate", e.Message, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        foreach (var g in _guarded)
            g.Dispose();
        GC.SuppressFinalize(this);
    }
}

public sealed class CpuOpTests() : OpTests(new Kernels.Cpu.CpuOps());

using BlockDance.Kernels;
using BlockDance.Kernels.Harness;
using BlockDance.Runtime;
using Xunit;

namespace BlockDance.Tests.Ops;

/// <summary>
/// Every op of <see cref="IOps"/> against the naive reference, on odd shapes and on DiT shapes, through the op harness
/// (<see cref="OpHarness"/>, the same code as <c>blockdance test-ops</c>; the cases, seeds, shapes and tolerances are in
/// <see cref="OpCases"/>), in the style of ggml's test-backend-ops: inputs from a fixed seed, outputs surrounded by guard
/// regions that must come back untouched, NaN/Inf checks, and a tolerance stated per storage type. A backend gets these
/// tests by subclassing.
/// </summary>
public abstract class OpTests : IDisposable
{
    protected OpTests(IOps ops) => Ops = ops;

    protected IOps Ops { get; }
    protected Device Dev => Ops.Device;

    /// <summary>
    /// Largest allowed |backend − <see cref="Philox.Normal"/>| per sample in the RandomNormal test: 0 (bit-identical)
    /// where the backend uses the same math library as .NET (the CPU device, the CUDA emulator); a GPU's accurate
    /// logf/sinf/cosf differ from glibc's in the last ulps.
    /// </summary>
    protected virtual float RandomNormalTolerance => 0f;

    /// <summary>Runs one harness case at one shape and fails the test with the harness's message.</summary>
    private void Verify(string op, params double[] shape) => OpHarness.Verify(Ops, op, shape);

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
        Verify("linear", m, n, k);
        Verify("linear_nobias", m, n, k);
    }

    [Theory]
    [InlineData(Activation.GeluTanh, 5, 7, 11)]
    [InlineData(Activation.GeluTanh, 64, 1536, 384)]
    [InlineData(Activation.Silu, 3, 17, 256)]
    public void Linear_with_activation_matches_reference(Activation act, int m, int n, int k) =>
        Verify(act == Activation.GeluTanh ? "linear_gelu" : "linear_silu", m, n, k);

    [Theory]
    [InlineData(1)]
    [InlineData(385)]
    [InlineData(100_003)]
    public void Silu_matches_reference(int n) => Verify("silu", n);

    [Fact]
    public void Add_matches_reference() => Verify("add", 5, 7, 11);

    public static TheoryData<int, int, int, float> NormShapes => new() { { 5, 7, 11, 1e-6f }, { 2, 3, 1, 1e-5f }, { 2, 256, 384, 1e-6f }, { 3, 5, 1152, 1e-5f }, { 2, 520, 1031, 1e-6f } };

    [Theory]
    [MemberData(nameof(NormShapes))]
    public void LayerNormModulate_matches_reference(int b, int t, int d, float eps) => Verify("layernorm_modulate", b, t, d, eps);

    [Theory]
    [InlineData(5, 7, 11)]
    [InlineData(2, 256, 384)]
    [InlineData(2, 520, 1031)]
    public void GatedResidualAdd_matches_reference(int b, int t, int d) => Verify("gated_residual_add", b, t, d);

    public static TheoryData<int, int, int, int> AttentionShapes => new() { { 1, 5, 12, 3 }, { 2, 7, 22, 2 }, { 3, 17, 8, 1 }, { 2, 256, 384, 6 }, { 1, 64, 1152, 16 }, { 2, 45, 144, 2 } };

    [Theory]
    [MemberData(nameof(AttentionShapes))]
    public void Attention_matches_reference(int b, int t, int d, int heads) => Verify("attention", b, t, d, heads);

    [Theory]
    [InlineData(2, 3, 10, 14, 2, 7)]
    [InlineData(1, 4, 8, 8, 4, 5)]
    [InlineData(2, 4, 32, 32, 2, 384)]
    public void Patch_embedding_as_im2col_and_linear_matches_a_direct_convolution(int b, int c, int h, int w, int p, int d) =>
        Verify("patch_embedding", b, c, h, w, p, d);

    [Theory]
    [InlineData(2, 3, 10, 14, 2)]
    [InlineData(1, 4, 8, 8, 4)]
    public void Patchify_matches_a_naive_im2col(int b, int c, int h, int w, int p) => Verify("patchify", b, c, h, w, p);

    [Theory]
    [InlineData(2, 3, 10, 14, 2)]
    [InlineData(1, 8, 32, 32, 2)]
    [InlineData(3, 6, 16, 8, 4)]
    public void Unpatchify_matches_reference(int b, int c, int h, int w, int p) => Verify("unpatchify", b, c, h, w, p);

    [Theory]
    [InlineData(2, 3, 5, 7)]     // odd sizes
    [InlineData(1, 8, 16, 64)]   // 8 frames of a 4×4 grid
    [InlineData(3, 16, 1, 5)]    // one token per frame
    public void SwapFrameTokenAxes_there_and_back(int b, int p, int q, int d) => Verify("swap_frame_token_axes", b, p, q, d);

    [Fact]
    public void SwapFrameTokenAxes_refuses_a_wrong_shape_and_an_overlap()
    {
        using var x = Dev.Allocate(Ops.ActivationType, 2, 3, 4, 5);
        using var wrong = Dev.Allocate(Ops.ActivationType, 2, 3, 4, 5);
        Assert.Contains("should be [2, 4, 3, 5]", Assert.Throws<ArgumentException>(() => Ops.SwapFrameTokenAxes(x, wrong)).Message);
        Assert.Contains("overlaps", Assert.Throws<ArgumentException>(() => Ops.SwapFrameTokenAxes(x, x.Reshape(2, 4, 3, 5))).Message);
    }

    [Fact]
    public void AddPositionEmbedding_adds_the_same_rows_to_every_batch_item() => Verify("add_position_embedding", 3, 5, 11);

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void TimestepEmbedding_matches_reference(int shift) => Verify("timestep_embedding", 5, 256, shift);

    [Fact]
    public void EmbeddingLookup_copies_rows() => Verify("embedding_lookup", 11, 7, 4);

    [Theory]
    [InlineData(3)]
    [InlineData(4)]
    public void GuidanceCombine_guides_the_first_channels_and_keeps_the_rest_from_the_conditional_half(int guided) =>
        Verify("guidance_combine", 2, 8, 3, 5, guided);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void DdimStep_matches_the_formula(bool rederive) => Verify("ddim_step", 2, 4, 3, 3, rederive ? 1 : 0);

    [Fact]
    public void AncestralStep_matches_the_formula() => Verify("ancestral_step", 2, 4, 3, 3);

    /// <summary>Every harness case passes at its first (smallest) test shape, so a new op is tested on every backend as
    /// soon as its case exists.</summary>
    [Fact]
    public void Every_harness_case_passes_at_its_smallest_test_shape()
    {
        foreach (var op in OpCases.All)
        {
            var result = OpHarness.Check(Ops, op, op.TestShapes[0]);
            Assert.True(result.Passed, result.Message);
        }
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

    public void Dispose() => GC.SuppressFinalize(this);
}

public sealed class CpuOpTests() : OpTests(new Kernels.Cpu.CpuOps());

using BlockDance.Kernels;
using BlockDance.Kernels.Cpu;
using BlockDance.Runtime;
using Xunit;

namespace BlockDance.Tests.Ops;

/// <summary>
/// The CPU device's packed-weight GEMM (<c>CpuGemm</c>, issue 16) through <see cref="CpuOps.Linear"/> with weights
/// that do not own their memory (checkpoint views: packed once and kept; owned weights are packed per call and covered
/// by the op tests): against the naive double-precision <see cref="Reference.Linear"/>
/// on shapes that cover full and partial panels (48 columns), full and leftover micro-tile rows (8), K blocks (128) and
/// their remainders, a single row block (panels streamed whole), every activation, with and without bias; the same
/// bits whatever the thread count and on a second call (the packed copy reused); and the OpenBLAS path within the same
/// tolerance.
/// </summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class CpuGemmTests
{
    private const double Tolerance = 2e-5;   // max|a−b| / max|b|, as the op tests for fp32

    public static TheoryData<int, int, int> Shapes => new()
    {
        { 1, 1, 1 }, { 2, 33, 5 }, { 7, 32, 300 }, { 9, 70, 257 }, { 16, 64, 512 }, { 513, 100, 17 }, { 8, 32, 256 },
        { 2, 2304, 384 }, { 512, 384, 1536 },
        { 300, 96, 1100 },   // packed X over CpuGemm.XReuseBytes with row chunks: one run of items per thread
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Packed_linear_matches_reference(int m, int n, int k)
    {
        foreach (var act in new[] { Activation.None, Activation.GeluTanh, Activation.Silu })
            foreach (bool bias in new[] { true, false })
            {
                var (x, w, b) = Operands(m, n, k);
                Func<double, double>? f = act switch { Activation.GeluTanh => Reference.GeluTanh, Activation.Silu => Reference.Silu, _ => null };
                var want = Reference.Linear(x, w, bias ? b : null, m, n, k, f);
                using var ops = new CpuOps(2);
                float[] got = Run(ops, x, w, bias ? b : null, m, n, k, act);
                Assert.True(ops.PackedWeightBytes >= (long)n * k * sizeof(float), "the weight view went through the packed GEMM");
                AssertClose(want, got, $"{m}x{n}x{k} {act} bias={bias}");
            }
    }

    /// <summary>The same bits with 1 and 2 threads, small chunks (packed X in L2) and one run of panels per thread (packed X above <see cref="CpuGemm.XReuseBytes"/>).</summary>
    [Theory]
    [InlineData(100, 200, 600)]
    [InlineData(300, 200, 1100)]
    public void Packed_linear_is_bit_identical_across_thread_counts_and_calls(int m, int n, int k)
    {
        var (x, w, b) = Operands(m, n, k);
        float[] one, two;
        using (var ops = new CpuOps(1))
            one = Run(ops, x, w, b, m, n, k, Activation.GeluTanh);
        using (var ops = new CpuOps(2))
            two = Run(ops, x, w, b, m, n, k, Activation.GeluTanh, calls: 2);   // the second call reuses the packed copy
        Assert.Equal(one, two);
    }

    /// <summary>
    /// A product of at most one row block (<see cref="CpuGemm.MR"/> rows) walks each panel whole, K innermost, with its
    /// own prefetching; its rows must be bit for bit those of the same rows inside a larger product, which takes the
    /// K-blocked path: each element is the same FMA chain in k order either way.
    /// </summary>
    [Theory]
    [InlineData(2, 200, 1100)]
    [InlineData(8, 96, 300)]
    [InlineData(1, 48, 7)]
    public void A_single_row_block_gives_the_bits_of_the_same_rows_in_a_larger_product(int m, int n, int k)
    {
        const int larger = 3 * CpuGemm.MR + 1;
        var (x, w, b) = Operands(larger, n, k);
        using var ops = new CpuOps(2);
        float[] all = Run(ops, x, w, b, larger, n, k, Activation.GeluTanh);
        float[] few = Run(ops, x[..(m * k)], w, b, m, n, k, Activation.GeluTanh);
        Assert.Equal(all[..(m * n)], few);
        AssertClose(Reference.Linear(x[..(m * k)], w, b, m, n, k, Reference.GeluTanh), few, $"{m}x{n}x{k}");
    }

    [Fact]
    public void Openblas_path_agrees_with_the_packed_path()
    {
        const int m = 64, n = 96, k = 384;
        var (x, w, b) = Operands(m, n, k);
        using var ops = new CpuOps(2);
        float[] packed = Run(ops, x, w, b, m, n, k, Activation.None);
        ops.PackWeights = false;
        float[] blas = Run(ops, x, w, b, m, n, k, Activation.None);
        AssertClose(Reference.Linear(x, w, b, m, n, k), blas, "OpenBLAS");
        AssertClose(blas, packed, "packed vs OpenBLAS");
    }

    /// <summary>
    /// Every micro-kernel this CPU runs (AVX-512, AVX2 forced on an AVX-512 machine, scalar) against the reference, and
    /// bit-identical to one another: each output element is the same FMA chain in k order whichever kernel computes it.
    /// </summary>
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(13, 50, 129)]
    [InlineData(16, 96, 256)]
    [InlineData(9, 48, 300)]
    [InlineData(2, 2304, 384)]
    [InlineData(512, 384, 384)]
    public void Every_micro_kernel_matches_the_reference_with_the_same_bits(int m, int n, int k)
    {
        var (x, w, b) = Operands(m, n, k);
        var want = Reference.Linear(x, w, b, m, n, k, Reference.GeluTanh);
        using var ops = new CpuOps(2);
        var kernels = new[] { CpuGemm.Isa.Avx512, CpuGemm.Isa.Avx2, CpuGemm.Isa.Scalar }.Where(CpuGemm.Supported).ToArray();
        Assert.Contains(CpuGemm.Isa.Scalar, kernels);
        if (System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported)
            Assert.Contains(CpuGemm.Isa.Avx2, kernels);
        float[]? first = null;
        foreach (var isa in kernels)
        {
            if (isa == CpuGemm.Isa.Scalar && (long)m * n * k > 20_000_000)
                continue;   // the scalar kernel is slow: small shapes only
            ops.GemmKernel = isa;
            float[] got = Run(ops, x, w, b, m, n, k, Activation.GeluTanh);
            AssertClose(want, got, $"{m}x{n}x{k} {isa}");
            if (first is null)
                first = got;
            else
                Assert.Equal(first, got);
        }
    }

    [Fact]
    public void A_micro_kernel_the_cpu_lacks_is_refused()
    {
        using var ops = new CpuOps(1);
        Assert.Equal(CpuGemm.Best, ops.GemmKernel);
        if (CpuGemm.Best != CpuGemm.Isa.Avx512)
            Assert.Throws<ArgumentException>(() => ops.GemmKernel = CpuGemm.Isa.Avx512);
    }

    private static (float[] X, float[] W, float[] B) Operands(int m, int n, int k) =>
        (Reference.Random(m * k, 11), Reference.Random(n * k, 12, 0.3f), Reference.Random(n, 13));

    /// <summary>Runs Linear with the weight as a view (not owning its memory, like a checkpoint's tensors); the last call's output.</summary>
    private static float[] Run(CpuOps ops, float[] x, float[] w, float[]? b, int m, int n, int k, Activation act, int calls = 1)
    {
        var dev = ops.Device;
        using var xt = dev.FromFloats(x, DType.F32, m, k);
        using var owner = dev.FromFloats(w, DType.F32, n * k);
        var wt = owner.View(0, n, k);
        using var bt = b is null ? null : dev.FromFloats(b, DType.F32, n);
        using var y = dev.Allocate(DType.F32, m, n);
        float[] result = [];
        for (int i = 0; i < calls; i++)
        {
            y.AsSpan<float>().Fill(float.NaN);
            ops.Linear(xt, wt, bt, y, act);
            float[] now = y.ToFloatArray();
            if (i > 0)
                Assert.Equal(result, now);
            result = now;
        }
        return result;
    }

    private static void AssertClose(float[] want, float[] got, string what)
    {
        Assert.Equal(want.Length, got.Length);
        double maxErr = 0, maxRef = 1e-30;
        for (int i = 0; i < want.Length; i++)
        {
            Assert.True(float.IsFinite(got[i]), $"{what}: element {i} is {got[i]}");
            maxErr = Math.Max(maxErr, Math.Abs((double)got[i] - want[i]));
            maxRef = Math.Max(maxRef, Math.Abs((double)want[i]));
        }
        Assert.True(maxErr / maxRef <= Tolerance, $"{what}: max|err|/max|ref| = {maxErr / maxRef:E3} > {Tolerance:E1}");
    }
}

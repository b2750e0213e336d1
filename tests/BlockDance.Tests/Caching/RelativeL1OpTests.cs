using BlockDance.Kernels;
using BlockDance.Kernels.Cpu;
using BlockDance.Runtime;
using BlockDance.Tests.Ops;
using Xunit;

namespace BlockDance.Tests.Caching;

/// <summary>
/// <see cref="IOps.RelativeL1"/>, the adaptive policies' indicator, on every backend and storage type against a naive
/// double-precision loop: per item Σ|x − ref| / Σ|ref|, weighted and accumulated into an F32 result.
/// </summary>
public abstract class RelativeL1OpTests(IOps ops) : IDisposable
{
    private readonly List<Tensor> _owned = [];

    /// <summary>The backend under test.</summary>
    protected IOps Ops { get; } = ops;

    /// <summary>Largest allowed relative error of one indicator value (float32 sums on the GPU side: ~1e-6 of the sum).</summary>
    protected virtual double Tolerance => 1e-5;

    private Tensor Input(float[] values, params int[] shape)
    {
        var t = Ops.Device.FromFloats(values, Ops.ActivationType, shape);
        _owned.Add(t);
        return t;
    }

    private float[] Stored(float[] values)
    {
        using var t = Ops.Device.FromFloats(values, Ops.ActivationType, values.Length);
        return t.ToFloatArray();
    }

    private static double[] Naive(float[] x, float[] r, int batch)
    {
        int per = x.Length / batch;
        var y = new double[batch];
        for (int b = 0; b < batch; b++)
        {
            double diff = 0, norm = 0;
            for (int j = 0; j < per; j++)
            {
                diff += Math.Abs((double)x[b * per + j] - r[b * per + j]);
                norm += Math.Abs((double)r[b * per + j]);
            }
            y[b] = norm > 0 ? diff / norm : diff > 0 ? double.PositiveInfinity : 0;
        }
        return y;
    }

    private void AssertClose(double[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= Tolerance * Math.Abs(expected[i]) + 1e-7,
                $"{what}: item {i} is {actual[i]:R}, expected {expected[i]:R}");
    }

    [Theory]
    [InlineData(1, 7, 11)]
    [InlineData(3, 64, 128)]
    [InlineData(2, 256, 1152)]   // DiT-XL/2 at 256 px: 295 k elements per item
    public void Matches_the_naive_loop_per_item(int b, int t, int d)
    {
        var r = Stored(Reference.Random(b * t * d, 40, 2f));
        // x = ref plus a change that differs per item, so a mix-up of items shows.
        var change = Reference.Random(b * t * d, 41);
        var x = Stored(r.Select((v, i) => v + 0.05f * (1 + i / (t * d)) * change[i]).ToArray());
        var xt = Input(x, b, t, d);
        var rt = Input(r, b, t, d);
        var y = Ops.Device.Allocate(DType.F32, b);
        _owned.Add(y);
        Ops.RelativeL1(xt, rt, y, 1f, false);
        var expected = Naive(x, r, b);
        AssertClose(expected, y.ToArray<float>(), "RelativeL1");
        Assert.True(expected.Distinct().Count() == b, "the items must differ");

        // accumulate: y += 0.25·r(ref, x) (the roles swapped, so the value differs).
        Ops.RelativeL1(rt, xt, y, 0.25f, true);
        var swapped = Naive(r, x, b);
        AssertClose(expected.Zip(swapped, (p, q) => p + 0.25 * q).ToArray(), y.ToArray<float>(), "RelativeL1 accumulated");
    }

    [Fact]
    public void A_zero_reference_gives_zero_when_equal_and_infinity_otherwise()
    {
        var zeros = new float[2 * 5];
        var xt = Input([0, 0, 0, 0, 0, 1, 0, 0, 0, 0], 2, 5);
        var rt = Input(zeros, 2, 5);
        var y = Ops.Device.Allocate(DType.F32, 2);
        _owned.Add(y);
        Ops.RelativeL1(xt, rt, y, 1f, false);
        var v = y.ToArray<float>();
        Assert.Equal(0f, v[0]);
        Assert.Equal(float.PositiveInfinity, v[1]);
    }

    [Fact]
    public void An_item_gets_the_same_bits_at_any_batch_size()
    {
        int b = 5, t = 16, d = 96;
        var r = Stored(Reference.Random(b * t * d, 42));
        var x = Stored(Reference.Random(b * t * d, 43));
        var y = Ops.Device.Allocate(DType.F32, b);
        _owned.Add(y);
        Ops.RelativeL1(Input(x, b, t, d), Input(r, b, t, d), y, 1f, false);
        var batched = y.ToArray<float>();
        for (int i = 0; i < b; i++)
        {
            var one = Ops.Device.Allocate(DType.F32, 1);
            _owned.Add(one);
            Ops.RelativeL1(Input(x[(i * t * d)..((i + 1) * t * d)], 1, t, d), Input(r[(i * t * d)..((i + 1) * t * d)], 1, t, d), one, 1f, false);
            Assert.Equal(batched[i], one.ToArray<float>()[0]);
        }
    }

    [Fact]
    public void Mismatched_shapes_and_a_wrong_result_are_rejected_naming_the_op()
    {
        var x = Input(new float[24], 2, 3, 4);
        var r = Input(new float[24], 2, 4, 3);
        var y = Ops.Device.Allocate(DType.F32, 2);
        var y3 = Ops.Device.Allocate(DType.F32, 3);
        _owned.Add(y);
        _owned.Add(y3);
        var e = Assert.Throws<ArgumentException>(() => Ops.RelativeL1(x, r, y, 1f, false));
        Assert.Contains("RelativeL1", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => Ops.RelativeL1(x, x, y3, 1f, false));
        Assert.Contains("RelativeL1", e.Message, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        foreach (var t in _owned)
            t.Dispose();
        GC.SuppressFinalize(this);
    }
}

public sealed class CpuRelativeL1OpTests() : RelativeL1OpTests(new CpuOps());

/// <summary>The kernel on the emulator in each storage type; the inputs are rounded to that type before the reference sees them.</summary>
public abstract class CudaEmuRelativeL1OpTests(CudaEmuFixture fixture, DType type, string schedule)
    : RelativeL1OpTests(fixture.Ops(type, schedule)), IClassFixture<CudaEmuFixture>;

[Collection(nameof(ProcessWideSettings))]
public sealed class CudaEmuF32RelativeL1OpTests(CudaEmuFixture f) : CudaEmuRelativeL1OpTests(f, DType.F32, "forward");
[Collection(nameof(ProcessWideSettings))]
public sealed class CudaEmuF32ReverseRelativeL1OpTests(CudaEmuFixture f) : CudaEmuRelativeL1OpTests(f, DType.F32, "reverse");
[Collection(nameof(ProcessWideSettings))]
public sealed class CudaEmuF16RelativeL1OpTests(CudaEmuFixture f) : CudaEmuRelativeL1OpTests(f, DType.F16, "random:3");
[Collection(nameof(ProcessWideSettings))]
public sealed class CudaEmuBF16RelativeL1OpTests(CudaEmuFixture f) : CudaEmuRelativeL1OpTests(f, DType.BF16, "forward");

/// <summary>The kernel on a real GPU (the device of <see cref="CudaGpuOpTests"/>); reported skipped without one.</summary>
public abstract class CudaGpuRelativeL1OpTests(DType type) : RelativeL1OpTests(CudaGpuOpTests.GpuOps(type));

public sealed class CudaGpuF32RelativeL1OpTests() : CudaGpuRelativeL1OpTests(DType.F32);
public sealed class CudaGpuF16RelativeL1OpTests() : CudaGpuRelativeL1OpTests(DType.F16);
public sealed class CudaGpuBF16RelativeL1OpTests() : CudaGpuRelativeL1OpTests(DType.BF16);

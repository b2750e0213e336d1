using System.Runtime.Intrinsics;
using BlockDance.Kernels.Cpu;
using Xunit;

namespace BlockDance.Tests.Ops;

/// <summary>
/// The CPU device's vector 2^x, GELU-tanh and SiLU (<c>CpuMath</c>): written twice, 8 and 16 lanes wide, with the same
/// operations so that a result never depends on the width that computed it (the GEMM epilogue takes the widest the
/// CPU has, then narrower ones for a row's rest). Both widths against double precision, and bit for bit against each
/// other, over the range the model meets and past the clamps (2^x is 0 below −126.5, finite up to 127.5 and +∞ from
/// there on: see CpuMath).
/// </summary>
public sealed class CpuMathTests
{
    private static float[] Inputs()
    {
        var values = new List<float> { 0f, -0f, 1e-30f, -1e-30f, 88f, 89f, 100f, 127.4f, 127.6f, 128f, 200f, -87.3f, -87.4f, -100f, -126.4f, -126.6f, -127f, -200f, float.MaxValue, float.MinValue };
        var rng = new Random(5);
        for (int i = 0; i < 4000; i++)
            values.Add((float)(rng.NextDouble() * 40 - 20));
        for (int i = 0; i < 1000; i++)
            values.Add((float)(rng.NextDouble() * 250 - 125));
        while (values.Count % 16 != 0)
            values.Add(0.5f);
        return [.. values];
    }

    [Fact]
    public void Exp2_gelu_and_silu_give_the_same_bits_at_8_and_16_lanes_and_match_double_precision()
    {
        Assert.SkipUnless(Vector256.IsHardwareAccelerated, "no 256-bit vectors on this CPU");
        float[] x = Inputs();
        var functions = new (string Name, Func<Vector256<float>, Vector256<float>> W8, Func<Vector512<float>, Vector512<float>> W16, Func<double, double> Reference, double Tolerance)[]
        {
            ("exp2", CpuMath.Exp2, CpuMath.Exp2, Exp2Reference, 2e-7),
            ("gelu", CpuMath.GeluTanh, CpuMath.GeluTanh, Reference.GeluTanh, 4e-7),
            ("silu", CpuMath.Silu, CpuMath.Silu, Reference.Silu, 4e-7),
        };
        foreach (var (name, w8, w16, reference, tolerance) in functions)
            for (int i = 0; i < x.Length; i += 16)
            {
                var lo = w8(Vector256.Create(x, i));
                var hi = w8(Vector256.Create(x, i + 8));
                var wide = w16(Vector512.Create(x, i));
                for (int j = 0; j < 16; j++)
                {
                    float narrow = j < 8 ? lo[j] : hi[j - 8];
                    Assert.True(BitConverter.SingleToInt32Bits(narrow) == BitConverter.SingleToInt32Bits(wide[j]),
                        $"{name}({x[i + j]:R}): {narrow:R} at 8 lanes, {wide[j]:R} at 16");
                    double want = reference(x[i + j]);
                    if (double.IsInfinity(want) || want > float.MaxValue)
                        Assert.True(float.IsPositiveInfinity(narrow) || narrow > 1e38f, $"{name}({x[i + j]:R}) = {narrow:R}, want ≈ {want:R}");
                    else
                        Assert.True(Math.Abs(narrow - want) <= tolerance * (name == "exp2" ? want : Math.Max(1.0, Math.Abs(want))),
                            $"{name}({x[i + j]:R}) = {narrow:R}, want {want:R}");
                }
            }
    }

    /// <summary>2^x in double precision as float rounds it: 0 where float has no normal number (the vector forms flush
    /// there), +∞ from 127.5 on (they overflow half a binade early).</summary>
    private static double Exp2Reference(double x) => x < -126.5 ? 0 : x >= 127.5 ? double.PositiveInfinity : Math.Pow(2, x);

    /// <summary>
    /// The softmax's 2^x (attention's scores are in base 2) for x ≤ 0: within 1.5e-7 relative of double precision where
    /// the result is a normal float, the same bits at both widths there; below −127 (−∞ included) 0 at 8 lanes and at
    /// most 2^−127 at 16 (vscalefps keeps subnormals), never negative or NaN.
    /// </summary>
    [Fact]
    public void Exp2_of_non_positive_inputs_matches_double_precision_at_8_and_16_lanes()
    {
        Assert.SkipUnless(Vector256.IsHardwareAccelerated, "no 256-bit vectors on this CPU");
        var values = new List<float> { 0f, -0f, -1e-30f, -0.5f, -0.49999997f, -0.50000006f, -1.5f, -125.5f, -126f, -126.4f, -127f, -127.5f, -130f, -1000f, float.MinValue, float.NegativeInfinity };
        var rng = new Random(6);
        for (int i = 0; i < 4000; i++)
            values.Add(-(float)(rng.NextDouble() * (i % 2 == 0 ? 30 : 126)));
        while (values.Count % 16 != 0)
            values.Add(-0.25f);
        float[] x = [.. values];
        bool wide = System.Runtime.Intrinsics.X86.Avx512F.IsSupported;
        for (int i = 0; i < x.Length; i += 16)
        {
            var lo = CpuMath.Exp2NonPositive(Vector256.Create(x, i));
            var hi = CpuMath.Exp2NonPositive(Vector256.Create(x, i + 8));
            var w = wide ? CpuMath.Exp2NonPositive(Vector512.Create(x, i)) : default;
            for (int j = 0; j < 16; j++)
            {
                float narrow = j < 8 ? lo[j] : hi[j - 8];
                double want = Math.Pow(2, x[i + j]);
                if (x[i + j] >= -126)
                {
                    Assert.True(Math.Abs(narrow - want) <= 1.5e-7 * want, $"2^{x[i + j]:R} = {narrow:R} at 8 lanes, want {want:R}");
                    if (wide)
                        Assert.True(BitConverter.SingleToInt32Bits(narrow) == BitConverter.SingleToInt32Bits(w[j]),
                            $"2^{x[i + j]:R}: {narrow:R} at 8 lanes, {w[j]:R} at 16");
                }
                else if (x[i + j] < -127)
                {
                    Assert.Equal(0f, narrow);
                    if (wide)
                        Assert.True(w[j] >= 0 && w[j] <= MathF.ScaleB(1f, -127), $"2^{x[i + j]:R} = {w[j]:R} at 16 lanes");
                }
            }
        }
    }
}

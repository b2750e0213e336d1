using BlockDance.Runtime;
using Xunit;

namespace BlockDance.Tests.Safetensors;

/// <summary>
/// float32 ↔ bfloat16/float16 against a naive reference that rounds by comparing distances in double precision,
/// sharing no bit tricks with <see cref="NumericConversions"/>.
/// </summary>
public sealed class NumericConversionsTests
{
    /// <summary>The value of a non-NaN bfloat16 bit pattern, from its fields (sign, 8-bit exponent, 7-bit mantissa).</summary>
    private static double Bf16Value(int bits)
    {
        int sign = (bits >> 15) & 1, exponent = (bits >> 7) & 0xFF, mantissa = bits & 0x7F;
        if (exponent == 0xFF)
        {
            Assert.Equal(0, mantissa); // only infinities; NaNs have no value
            return sign == 1 ? double.NegativeInfinity : double.PositiveInfinity;
        }
        double magnitude = exponent == 0
            ? Math.ScaleB(mantissa, -126 - 7)                 // subnormal: 0.m × 2^-126
            : Math.ScaleB(128 + mantissa, exponent - 127 - 7); // normal: 1.m × 2^(e-127)
        return sign == 1 ? -magnitude : magnitude;
    }

    /// <summary>
    /// Round to nearest, ties to even, by brute force: find the two bfloat16 neighbours of |x| by binary search over the
    /// ordered positive patterns, and pick the closer one (the even one on a tie). Above the largest finite value the
    /// upper neighbour is 2^128, which IEEE rounding treats as infinity.
    /// </summary>
    private static ushort NaiveBf16(float value)
    {
        Assert.False(float.IsNaN(value));
        ushort sign = (ushort)(float.IsNegative(value) ? 0x8000 : 0);
        double x = Math.Abs((double)value);
        if (double.IsPositiveInfinity(x))
            return (ushort)(sign | 0x7F80);
        int lo = 0, hi = 0x7F7F; // largest pattern whose value is ≤ x
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (Bf16Value(mid) <= x)
                lo = mid;
            else
                hi = mid - 1;
        }
        double below = Bf16Value(lo);
        double above = lo == 0x7F7F ? Math.ScaleB(1.0, 128) : Bf16Value(lo + 1);
        double down = x - below, up = above - x; // exact: a float and its bfloat16 neighbours differ in a few low bits
        int chosen = down < up ? lo : up < down ? lo + 1 : (lo % 2 == 0 ? lo : lo + 1);
        return (ushort)(sign | chosen); // lo + 1 == 0x7F80 is infinity
    }

    private static float F(uint bits) => BitConverter.UInt32BitsToSingle(bits);

    public static TheoryData<uint> TrickyFloats =>
    [
        0x0000_0000, 0x8000_0000,                           // ±0
        0x3F80_0000, 0x3F80_8000, 0x3F81_8000,              // 1, 1 + half an ulp (tie → down to even), 1 + 1.5 ulp (tie → up to even)
        0x3F80_8001, 0x3F80_7FFF, 0x3F81_7FFF, 0x3F81_8001, // just above and below the ties
        0xBF80_8000, 0xBF81_8000,                           // negative ties
        0x7F7F_7FFF, 0x7F7F_8000, 0x7F7F_FFFF,              // below / at / above the halfway point past bf16 max → max, inf, inf
        0x7F7F_0000, 0xFF7F_8000, 0xFF7F_FFFF,              // bf16 max exactly; negative overflow
        0x7F80_0000, 0xFF80_0000,                           // ±inf
        0x0000_0001, 0x0000_7FFF, 0x0000_8000, 0x0000_8001, // subnormals: tiny, just below half, tie to even (0), above
        0x0001_8000, 0x0000_C000, 0x007F_FFFF, 0x007F_8000, // subnormal ties up to even, largest subnormal rounding up to the smallest normal
        0x8000_8000, 0x8001_8000, 0x807F_FFFF,              // negative subnormals
        0x0080_0000, 0x00FF_FFFF, 0x4B80_0000, 0x3EAA_AAAB, // smallest normal, a carry into the exponent, 2^24, 1/3
    ];

    [Theory]
    [MemberData(nameof(TrickyFloats))]
    public void Bf16_rounding_of_tricky_values_matches_the_naive_reference(uint bits)
    {
        ushort expected = NaiveBf16(F(bits));
        Assert.Equal(expected, NumericConversions.SingleToBFloat16(F(bits)));
        ushort[] viaSpan = new ushort[1];
        NumericConversions.SingleToBFloat16([F(bits)], viaSpan);
        Assert.Equal(expected, viaSpan[0]);
    }

    [Fact]
    public void Bf16_rounding_pinned_values()
    {
        Assert.Equal(0x3F80, NumericConversions.SingleToBFloat16(F(0x3F80_8000))); // tie, kept part even: down
        Assert.Equal(0x3F82, NumericConversions.SingleToBFloat16(F(0x3F81_8000))); // tie, kept part odd: up
        Assert.Equal(0x7F7F, NumericConversions.SingleToBFloat16(F(0x7F7F_7FFF)));
        Assert.Equal(0x7F80, NumericConversions.SingleToBFloat16(F(0x7F7F_8000))); // halfway past max → inf
        Assert.Equal(0x7F80, NumericConversions.SingleToBFloat16(float.MaxValue));
        Assert.Equal(0xFF80, NumericConversions.SingleToBFloat16(float.MinValue));
        Assert.Equal(0x0000, NumericConversions.SingleToBFloat16(F(0x0000_8000)));
        Assert.Equal(0x0080, NumericConversions.SingleToBFloat16(F(0x007F_FFFF)));
        Assert.Equal(0x8000, NumericConversions.SingleToBFloat16(-0f));
    }

    [Fact]
    public void Bf16_rounding_of_a_million_random_floats_matches_the_naive_reference()
    {
        var random = new Random(20240601);
        var source = new float[1_000_003]; // not a multiple of any vector width
        for (int i = 0; i < source.Length; i++)
        {
            uint bits;
            do
            {
                bits = (uint)random.NextInt64(0, 1L << 32);
                if (i % 4 == 0)
                    bits = (bits & 0xFFFF_0000) | 0x8000; // every fourth an exact tie
            } while (float.IsNaN(F(bits)));
            source[i] = F(bits);
        }
        var fast = new ushort[source.Length];
        NumericConversions.SingleToBFloat16(source, fast);
        for (int i = 0; i < source.Length; i++)
        {
            ushort expected = NaiveBf16(source[i]);
            if (fast[i] != expected)
                Assert.Fail($"0x{BitConverter.SingleToUInt32Bits(source[i]):X8} ({source[i]:R}) → 0x{fast[i]:X4}, expected 0x{expected:X4}");
        }
    }

    [Theory]
    [InlineData(0x7FC0_0000u, (ushort)0x7FC0)] // the canonical quiet NaN
    [InlineData(0xFFC0_0000u, (ushort)0xFFC0)] // negative
    [InlineData(0x7F80_0001u, (ushort)0x7FC0)] // signalling, payload only in the low bits: truncation would give inf
    [InlineData(0x7FBF_FFFFu, (ushort)0x7FFF)] // signalling, payload kept in the upper bits; rounding must not carry
    [InlineData(0xFF81_0000u, (ushort)0xFFC1)]
    [InlineData(0x7FFF_FFFFu, (ushort)0x7FFF)] // all ones: rounding up would overflow into the sign
    public void Na_n_stays_a_quiet_na_n_of_the_same_sign(uint bits, ushort expected)
    {
        Assert.Equal(expected, NumericConversions.SingleToBFloat16(F(bits)));
        var many = Enumerable.Repeat(F(bits), 37).ToArray();
        var result = new ushort[many.Length];
        NumericConversions.SingleToBFloat16(many, result);
        Assert.All(result, r => Assert.Equal(expected, r));
        Assert.True(float.IsNaN(NumericConversions.BFloat16ToSingle(expected)));
    }

    [Fact]
    public void Every_Bf16_survives_the_round_trip_through_Float32()
    {
        var all = new ushort[65536];
        for (int i = 0; i < all.Length; i++)
            all[i] = (ushort)i;
        var widened = new float[all.Length];
        NumericConversions.BFloat16ToSingle(all, widened);
        var back = new ushort[all.Length];
        NumericConversions.SingleToBFloat16(widened, back);
        for (int i = 0; i < all.Length; i++)
        {
            float scalar = NumericConversions.BFloat16ToSingle((ushort)i);
            Assert.Equal(BitConverter.SingleToUInt32Bits(scalar), BitConverter.SingleToUInt32Bits(widened[i]));
            Assert.Equal((uint)i << 16, BitConverter.SingleToUInt32Bits(scalar)); // widening is exact
            bool isNaN = (i & 0x7F80) == 0x7F80 && (i & 0x7F) != 0;
            Assert.Equal(isNaN, float.IsNaN(scalar));
            if (!isNaN)
            {
                Assert.Equal(Bf16Value(i), (double)scalar);
                Assert.Equal((ushort)i, back[i]);
            }
            else
            {
                Assert.Equal((ushort)(i | 0x0040), back[i]); // same sign and payload, made quiet
            }
            Assert.Equal(back[i], NumericConversions.SingleToBFloat16(scalar));
        }
    }

    [Fact]
    public void Every_half_survives_the_round_trip_through_Float32()
    {
        var all = new Half[65536];
        for (int i = 0; i < all.Length; i++)
            all[i] = BitConverter.UInt16BitsToHalf((ushort)i);
        var widened = new float[all.Length];
        NumericConversions.HalfToSingle(all, widened);
        var back = new Half[all.Length];
        NumericConversions.SingleToHalf(widened, back);
        for (int i = 0; i < all.Length; i++)
        {
            if (Half.IsNaN(all[i]))
            {
                Assert.True(float.IsNaN(widened[i]));
                Assert.True(Half.IsNaN(back[i]));
                Assert.Equal(Half.IsNegative(all[i]), Half.IsNegative(back[i]));
            }
            else
            {
                Assert.Equal((ushort)i, BitConverter.HalfToUInt16Bits(back[i]));
            }
        }
    }

    [Fact]
    public void Float32_to_half_rounds_to_nearest_even()
    {
        // 2049 is halfway between the float16 neighbours 2048 and 2050; 2051 between 2050 and 2052.
        float[] source = [2049f, 2051f, 65504f, 65520f, 1e-8f, -0f];
        var result = new Half[source.Length];
        NumericConversions.SingleToHalf(source, result);
        Assert.Equal([(Half)2048f, (Half)2052f, Half.MaxValue, Half.PositiveInfinity, (Half)0f], result[..5]);
        Assert.True(Half.IsNegative(result[5]));
    }

    [Fact]
    public void Span_methods_agree_with_the_scalar_one_at_every_length()
    {
        var random = new Random(7);
        for (int length = 0; length <= 70; length++)
        {
            var source = Enumerable.Range(0, length).Select(_ => F((uint)random.NextInt64(0, 1L << 32))).ToArray();
            var bf16 = new ushort[length + 3]; // longer destinations are fine; the tail is untouched
            NumericConversions.SingleToBFloat16(source, bf16);
            for (int i = 0; i < length; i++)
                Assert.Equal(NumericConversions.SingleToBFloat16(source[i]), bf16[i]);
            Assert.Equal([0, 0, 0], bf16[length..]);
            var widened = new float[length];
            NumericConversions.BFloat16ToSingle(bf16.AsSpan(0, length), widened);
            for (int i = 0; i < length; i++)
                Assert.Equal(NumericConversions.BFloat16ToSingle(bf16[i]), widened[i]);
        }
    }

    [Fact]
    public void Short_destinations_are_rejected()
    {
        Assert.Throws<ArgumentException>(() => NumericConversions.SingleToBFloat16(new float[4], new ushort[3]));
        Assert.Throws<ArgumentException>(() => NumericConversions.BFloat16ToSingle(new ushort[4], new float[3]));
        Assert.Throws<ArgumentException>(() => NumericConversions.SingleToHalf(new float[4], new Half[3]));
        Assert.Throws<ArgumentException>(() => NumericConversions.HalfToSingle(new Half[4], new float[3]));
    }
}

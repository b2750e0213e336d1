using System.Numerics;
using System.Runtime.InteropServices;

namespace BlockDance.Runtime;

/// <summary>
/// Bit-exact conversions between float32 and the 16-bit storage types (bfloat16, IEEE float16).
/// bfloat16 values travel as their raw bits in a <see cref="ushort"/>: .NET has no bfloat16 type, and the bits are what
/// safetensors files and the kernels store.
/// </summary>
/// <remarks>
/// float32 → bfloat16 rounds to nearest, ties to even (as PyTorch's <c>c10::BFloat16</c> and CUDA's
/// <c>__float2bfloat16</c> do); values at or beyond the halfway point above the largest bfloat16 become infinity.
/// A NaN stays a NaN of the same sign, made quiet, keeping the upper 7 bits of its payload. bfloat16 → float32 is exact.
/// float16 conversions use <see cref="Half"/>, which rounds to nearest even.
/// The span methods write <c>source.Length</c> elements and require the destination to be at least that long.
/// </remarks>
internal static class NumericConversions
{
    private const uint QuietBit = 0x0040; // the most significant mantissa bit of a bfloat16

    /// <summary>Rounds a float32 to the nearest bfloat16 (ties to even) and returns its bits.</summary>
    public static ushort SingleToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7FFF_FFFF) > 0x7F80_0000)
            return (ushort)((bits >> 16) | QuietBit); // NaN: keep sign and upper payload, never round into infinity
        // Adding 0x7FFF rounds the upper half up unless it is exactly halfway; the low bit of the kept part breaks ties
        // to even. A carry out of the mantissa correctly bumps the exponent (and the largest finite values into inf).
        uint roundingBias = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + roundingBias) >> 16);
    }

    /// <summary>The float32 value of a bfloat16 (exact: a bfloat16 is the upper half of a float32).</summary>
    public static float BFloat16ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>Rounds each float32 to bfloat16 bits; see <see cref="SingleToBFloat16(float)"/>.</summary>
    public static void SingleToBFloat16(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        CheckDestination(source.Length, destination.Length);
        ReadOnlySpan<uint> src = MemoryMarshal.Cast<float, uint>(source);
        int i = 0;
        if (Vector.IsHardwareAccelerated && src.Length >= 2 * Vector<uint>.Count)
        {
            // Two uint vectors narrow into one ushort vector; the arithmetic is the scalar one, lane by lane.
            int step = 2 * Vector<uint>.Count;
            for (; i <= src.Length - step; i += step)
            {
                var lo = Round(new Vector<uint>(src.Slice(i)));
                var hi = Round(new Vector<uint>(src.Slice(i + Vector<uint>.Count)));
                Vector.Narrow(lo, hi).CopyTo(destination.Slice(i));
            }
        }
        for (; i < src.Length; i++)
            destination[i] = SingleToBFloat16(source[i]);

        static Vector<uint> Round(Vector<uint> bits)
        {
            var isNaN = Vector.GreaterThan(bits & new Vector<uint>(0x7FFF_FFFF), new Vector<uint>(0x7F80_0000));
            var rounded = (bits + new Vector<uint>(0x7FFF) + ((bits >> 16) & Vector<uint>.One)) >> 16;
            var quietNaN = (bits >> 16) | new Vector<uint>(QuietBit);
            return Vector.ConditionalSelect(isNaN, quietNaN, rounded);
        }
    }

    /// <summary>Widens each bfloat16 to float32 (exact).</summary>
    public static void BFloat16ToSingle(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        CheckDestination(source.Length, destination.Length);
        Span<uint> dst = MemoryMarshal.Cast<float, uint>(destination);
        int i = 0;
        if (Vector.IsHardwareAccelerated && source.Length >= Vector<ushort>.Count)
        {
            int step = Vector<ushort>.Count;
            for (; i <= source.Length - step; i += step)
            {
                Vector.Widen(new Vector<ushort>(source.Slice(i)), out Vector<uint> lo, out Vector<uint> hi);
                (lo << 16).CopyTo(dst.Slice(i));
                (hi << 16).CopyTo(dst.Slice(i + Vector<uint>.Count));
            }
        }
        for (; i < source.Length; i++)
            dst[i] = (uint)source[i] << 16;
    }

    /// <summary>Rounds each float32 to float16 (ties to even; overflow to infinity; NaN stays NaN).</summary>
    public static void SingleToHalf(ReadOnlySpan<float> source, Span<Half> destination)
    {
        CheckDestination(source.Length, destination.Length);
        for (int i = 0; i < source.Length; i++)
            destination[i] = (Half)source[i];
    }

    /// <summary>Widens each float16 to float32 (exact).</summary>
    public static void HalfToSingle(ReadOnlySpan<Half> source, Span<float> destination)
    {
        CheckDestination(source.Length, destination.Length);
        for (int i = 0; i < source.Length; i++)
            destination[i] = (float)source[i];
    }

    private static void CheckDestination(int sourceLength, int destinationLength)
    {
        if (destinationLength < sourceLength)
            throw new ArgumentException($"destination has {destinationLength} elements but the source has {sourceLength}");
    }
}

using System.Runtime.Intrinsics;

namespace BlockDance.Dit;

/// <summary>Finds NaN and infinity in float data, 8 lanes at a time.</summary>
internal static class NonFinite
{
    /// <summary>Index of the first NaN or ±∞, or −1.</summary>
    public static int IndexOf(ReadOnlySpan<float> values)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            // A finite float has an exponent below all ones: (bits & 0x7f800000) != 0x7f800000.
            var mask = Vector256.Create(0x7f800000);
            ref float start = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(values);
            for (; i + 8 <= values.Length; i += 8)
            {
                var bits = Vector256.LoadUnsafe(ref start, (nuint)i).AsInt32() & mask;
                if (Vector256.EqualsAny(bits, mask))
                    break;
            }
        }
        for (; i < values.Length; i++)
            if (!float.IsFinite(values[i]))
                return i;
        return -1;
    }
}

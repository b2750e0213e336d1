using System.Buffers.Binary;
using System.Text;

namespace BlockDance.Tests.Safetensors;

/// <summary>Builds safetensors bytes by hand, independently of <c>SafetensorsWriter</c>.</summary>
internal static class HandMade
{
    /// <summary>
    /// The 8-byte little-endian length (the header's byte count, or <paramref name="claimedHeaderLength"/>), the header
    /// as UTF-8, then <paramref name="data"/>. No padding is added.
    /// </summary>
    public static byte[] File(string header, ReadOnlySpan<byte> data, ulong? claimedHeaderLength = null) =>
        File(Encoding.UTF8.GetBytes(header), data, claimedHeaderLength);

    public static byte[] File(ReadOnlySpan<byte> header, ReadOnlySpan<byte> data, ulong? claimedHeaderLength = null)
    {
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, claimedHeaderLength ?? (ulong)header.Length);
        header.CopyTo(bytes.AsSpan(8));
        data.CopyTo(bytes.AsSpan(8 + header.Length));
        return bytes;
    }

    /// <summary>Little-endian bytes of floats.</summary>
    public static byte[] Floats(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), values[i]);
        return bytes;
    }
}

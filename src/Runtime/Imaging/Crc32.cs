namespace BlockDance.Runtime.Imaging;

/// <summary>
/// The CRC-32 of ISO-HDLC / IEEE 802.3 (reflected polynomial <c>0xEDB88320</c>, initial value and final XOR
/// <c>0xFFFFFFFF</c>), as PNG (ISO/IEC 15948 Annex D), zlib and gzip use it. <c>CRC32("123456789") = 0xCBF43926</c>.
/// Implemented here because System.IO.Hashing is not part of the shared framework; byte-at-a-time with one 256-entry
/// table, which is fast enough for the images this project writes.
/// </summary>
internal static class Crc32
{
    private static readonly uint[] Table = BuildTable();

    /// <summary>The CRC of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Append(0, data);

    /// <summary>
    /// The CRC of the concatenation of the bytes that gave <paramref name="crc"/> and <paramref name="data"/>
    /// (start with 0), so a chunk's type and data can be hashed without copying them together.
    /// </summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        uint c = ~crc;
        foreach (byte b in data)
            c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return ~c;
    }

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++)
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }
}

using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Xunit;

namespace BlockDance.Tests.Metrics;

/// <summary>
/// An independent PNG reader for tests, written from the specification (W3C PNG 2nd edition) without the encoder's
/// code: it checks the signature, walks the chunks verifying each CRC with a bit-by-bit CRC-32 (no table), requires
/// IHDR first and IEND last and empty, inflates the concatenated IDAT data and undoes the five scanline filters.
/// Supports what the encoder writes: 8-bit gray, RGB and RGBA, not interlaced.
/// </summary>
internal static class PngFile
{
    public sealed record Chunk(string Type, byte[] Data, uint Crc);

    public sealed record Decoded(int Width, int Height, int ColorType, byte[] Pixels, IReadOnlyList<Chunk> Chunks, byte[] FilterTypes);

    private static readonly byte[] Signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>CRC-32 of ISO-HDLC computed bit by bit, straight from the specification's definition.</summary>
    public static uint BitwiseCrc(ReadOnlySpan<byte> bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int bit = 0; bit < 8; bit++)
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return crc ^ 0xFFFFFFFF;
    }

    public static List<Chunk> Chunks(byte[] file)
    {
        Assert.True(file.AsSpan(0, 8).SequenceEqual(Signature), "bad PNG signature");
        var chunks = new List<Chunk>();
        int p = 8;
        while (p < file.Length)
        {
            Assert.True(p + 12 <= file.Length, $"truncated chunk header at byte {p}");
            int length = BinaryPrimitives.ReadInt32BigEndian(file.AsSpan(p));
            Assert.InRange(length, 0, file.Length - p - 12);
            string type = Encoding.ASCII.GetString(file, p + 4, 4);
            byte[] data = file.AsSpan(p + 8, length).ToArray();
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(p + 8 + length));
            Assert.True(BitwiseCrc(file.AsSpan(p + 4, 4 + length)) == crc, $"chunk {type} at byte {p}: CRC mismatch");
            chunks.Add(new Chunk(type, data, crc));
            p += 12 + length;
        }
        Assert.Equal(file.Length, p);
        return chunks;
    }

    public static Decoded Decode(byte[] file)
    {
        var chunks = Chunks(file);
        Assert.Equal("IHDR", chunks[0].Type);
        Assert.Equal("IEND", chunks[^1].Type);
        Assert.Empty(chunks[^1].Data);
        Assert.Single(chunks, c => c.Type == "IHDR");
        Assert.Single(chunks, c => c.Type == "IEND");
        var header = chunks[0].Data;
        Assert.Equal(13, header.Length);
        int width = BinaryPrimitives.ReadInt32BigEndian(header);
        int height = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4));
        Assert.Equal(8, header[8]);                 // bit depth
        int colorType = header[9];
        Assert.Equal([0, 0, 0], header[10..13]);    // deflate, adaptive filtering, no interlace
        int bpp = colorType switch { 0 => 1, 2 => 3, 6 => 4, _ => throw new InvalidDataException($"colour type {colorType}") };

        // IDAT chunks must be consecutive; their data together is one zlib stream.
        int firstIdat = chunks.FindIndex(c => c.Type == "IDAT");
        int lastIdat = chunks.FindLastIndex(c => c.Type == "IDAT");
        Assert.True(firstIdat > 0, "no IDAT chunk");
        Assert.All(chunks.Skip(firstIdat).Take(lastIdat - firstIdat + 1), c => Assert.Equal("IDAT", c.Type));
        var zlib = chunks.Where(c => c.Type == "IDAT").SelectMany(c => c.Data).ToArray();
        byte[] raw;
        using (var inflater = new ZLibStream(new MemoryStream(zlib), CompressionMode.Decompress))
        using (var buffer = new MemoryStream())
        {
            inflater.CopyTo(buffer);
            raw = buffer.ToArray();
        }
        int stride = width * bpp;
        Assert.Equal((long)(stride + 1) * height, raw.Length);

        var pixels = new byte[stride * height];
        var filters = new byte[height];
        for (int y = 0; y < height; y++)
        {
            byte filter = raw[y * (stride + 1)];
            filters[y] = filter;
            for (int i = 0; i < stride; i++)
            {
                int x = raw[y * (stride + 1) + 1 + i];
                int a = i >= bpp ? pixels[y * stride + i - bpp] : 0;
                int b = y > 0 ? pixels[(y - 1) * stride + i] : 0;
                int c = i >= bpp && y > 0 ? pixels[(y - 1) * stride + i - bpp] : 0;
                int predicted = filter switch
                {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => (a + b) / 2,
                    4 => PaethFromSpec(a, b, c),
                    _ => throw new InvalidDataException($"row {y}: filter type {filter}"),
                };
                pixels[y * stride + i] = (byte)((x + predicted) & 0xFF);
            }
        }
        return new Decoded(width, height, colorType, pixels, chunks, filters);
    }

    private static int PaethFromSpec(int a, int b, int c)
    {
        int p = a + b - c;
        int pa = Math.Abs(p - a);
        int pb = Math.Abs(p - b);
        int pc = Math.Abs(p - c);
        if (pa <= pb && pa <= pc) return a;
        if (pb <= pc) return b;
        return c;
    }
}

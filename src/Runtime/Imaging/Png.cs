using System.Buffers.Binary;
using System.IO.Compression;
using BlockDance.Runtime.IO;

namespace BlockDance.Runtime.Imaging;

/// <summary>The pixel layouts <see cref="Png"/> writes; the values are PNG's colour-type codes, all at 8 bits per sample.</summary>
public enum PngColorType : byte
{
    /// <summary>One byte per pixel.</summary>
    Gray = 0,

    /// <summary>Three bytes per pixel: R, G, B.</summary>
    Rgb = 2,

    /// <summary>Four bytes per pixel: R, G, B, A (straight, not premultiplied, alpha).</summary>
    Rgba = 6,
}

/// <summary>
/// A minimal PNG encoder (ISO/IEC 15948, W3C PNG 2nd edition): 8-bit grayscale, RGB or RGBA, no interlacing, no
/// ancillary chunks. The file is the signature, <c>IHDR</c>, one or more <c>IDAT</c> chunks (the zlib stream split into
/// pieces of at most 1 MiB) and <c>IEND</c>. Each scanline gets the filter that minimises the sum of absolute values of
/// its filtered bytes (the heuristic the PNG specification recommends, §12.8), which keeps smooth images and flat
/// plots small. Output is deterministic: the same pixels always give the same bytes.
/// </summary>
/// <example><code>
/// var rgb = new byte[width * height * 3];   // row-major, R G B per pixel, top row first
/// Png.Write("out.png", rgb, width, height, PngColorType.Rgb);
/// </code></example>
internal static class Png
{
    /// <summary>The 8 bytes every PNG file starts with.</summary>
    public static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>Largest IDAT chunk written; a longer zlib stream is split over several chunks.</summary>
    internal const int MaxIdatBytes = 1 << 20;

    /// <summary>Bytes per pixel of <paramref name="color"/>.</summary>
    public static int BytesPerPixel(PngColorType color) => color switch
    {
        PngColorType.Gray => 1,
        PngColorType.Rgb => 3,
        PngColorType.Rgba => 4,
        _ => throw new ArgumentException($"unsupported PNG colour type {(int)color}; use Gray, Rgb or Rgba", nameof(color)),
    };

    /// <summary>
    /// Encodes row-major pixels (top row first, <see cref="BytesPerPixel"/> bytes each) as a PNG file in memory.
    /// </summary>
    /// <exception cref="ArgumentException">A dimension is not positive, or <paramref name="pixels"/> does not hold exactly width × height pixels.</exception>
    public static byte[] Encode(ReadOnlySpan<byte> pixels, int width, int height, PngColorType color)
    {
        int bpp = BytesPerPixel(color);
        if (width <= 0 || height <= 0)
            throw new ArgumentException($"a PNG image needs a positive width and height, not {width} × {height}");
        long stride = (long)width * bpp;
        long expected = stride * height;
        if (stride + 1 > Array.MaxLength || expected > Array.MaxLength)
            throw new ArgumentException($"a {width} × {height} {color} image is too large to encode in memory");
        if (pixels.Length != expected)
            throw new ArgumentException(
                $"a {width} × {height} {color} image needs {expected} bytes ({bpp} per pixel), but {pixels.Length} were given",
                nameof(pixels));

        using var output = new MemoryStream();
        output.Write(Signature);

        Span<byte> header = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header[4..], height);
        header[8] = 8;             // bit depth
        header[9] = (byte)color;   // colour type
        header[10] = 0;            // compression method: deflate
        header[11] = 0;            // filter method: adaptive, five filter types
        header[12] = 0;            // interlace method: none
        WriteChunk(output, "IHDR"u8, header);

        byte[] compressed = CompressScanlines(pixels, (int)stride, height, bpp);
        for (int offset = 0; offset < compressed.Length; offset += MaxIdatBytes)
            WriteChunk(output, "IDAT"u8, compressed.AsSpan(offset, Math.Min(MaxIdatBytes, compressed.Length - offset)));
        WriteChunk(output, "IEND"u8, []);
        return output.ToArray();
    }

    /// <summary>
    /// Encodes the image and writes it to <paramref name="path"/> atomically (see <see cref="AtomicFile"/>): the image
    /// is encoded completely before any file is created, and a failure while writing leaves no file behind and an
    /// existing file untouched.
    /// </summary>
    public static void Write(string path, ReadOnlySpan<byte> pixels, int width, int height, PngColorType color)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        AtomicFile.WriteAllBytes(path, Encode(pixels, width, height, color));
    }

    /// <summary>Writes one chunk: length (big-endian), type, data, and the CRC-32 of type and data.</summary>
    private static void WriteChunk(Stream output, ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        output.Write(word);
        output.Write(type);
        output.Write(data);
        BinaryPrimitives.WriteUInt32BigEndian(word, Crc32.Append(Crc32.Compute(type), data));
        output.Write(word);
    }

    /// <summary>The zlib stream of the filtered scanlines: for each row, one filter-type byte and the filtered row.</summary>
    private static byte[] CompressScanlines(ReadOnlySpan<byte> pixels, int stride, int height, int bpp)
    {
        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            // candidates[f] holds the row filtered with filter type f, behind its filter-type byte.
            var candidates = new byte[5][];
            for (int f = 0; f < 5; f++)
            {
                candidates[f] = new byte[stride + 1];
                candidates[f][0] = (byte)f;
            }
            var zeros = new byte[stride]; // the row above the first one
            for (int y = 0; y < height; y++)
            {
                var row = pixels.Slice(y * stride, stride);
                var above = y == 0 ? zeros : pixels.Slice((y - 1) * stride, stride);
                int best = 0;
                long bestCost = long.MaxValue;
                for (int f = 0; f < 5; f++)
                {
                    Filter(f, row, above, bpp, candidates[f].AsSpan(1));
                    long cost = Cost(candidates[f].AsSpan(1));
                    if (cost < bestCost)
                    {
                        bestCost = cost;
                        best = f;
                    }
                }
                zlib.Write(candidates[best]);
            }
        }
        return compressed.ToArray();
    }

    /// <summary>Applies filter type <paramref name="type"/> (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth; PNG §9.2).</summary>
    private static void Filter(int type, ReadOnlySpan<byte> row, ReadOnlySpan<byte> above, int bpp, Span<byte> output)
    {
        for (int i = 0; i < row.Length; i++)
        {
            int a = i >= bpp ? row[i - bpp] : 0;     // left
            int b = above[i];                        // up
            int c = i >= bpp ? above[i - bpp] : 0;   // up-left
            int predictor = type switch
            {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) >> 1,
                _ => Paeth(a, b, c),
            };
            output[i] = unchecked((byte)(row[i] - predictor));
        }
    }

    /// <summary>The Paeth predictor: whichever of left, up and up-left is closest to left + up − up-left.</summary>
    internal static int Paeth(int a, int b, int c)
    {
        int p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        if (pa <= pb && pa <= pc)
            return a;
        return pb <= pc ? b : c;
    }

    /// <summary>Sum of the filtered bytes read as signed values' magnitudes: small when the filter predicted well.</summary>
    private static long Cost(ReadOnlySpan<byte> filtered)
    {
        long sum = 0;
        foreach (byte b in filtered)
        {
            int v = (sbyte)b;
            sum += v < 0 ? -v : v; // not Math.Abs, which throws for −128
        }
        return sum;
    }
}

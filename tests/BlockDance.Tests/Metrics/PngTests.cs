using System.Text;
using BlockDance.Runtime.Imaging;
using BlockDance.Runtime.IO;
using Xunit;

namespace BlockDance.Tests.Metrics;

public sealed class PngTests : IDisposable
{
    private readonly MetricsFiles.Scratch _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Crc32_matches_known_values_and_a_bitwise_implementation()
    {
        Assert.Equal(0xCBF43926u, Crc32.Compute("123456789"u8));
        Assert.Equal(0xAE426082u, Crc32.Compute("IEND"u8));   // the CRC every PNG file ends with
        Assert.Equal(0u, Crc32.Compute([]));
        var random = new Random(7);
        var bytes = new byte[1000];
        random.NextBytes(bytes);
        Assert.Equal(PngFile.BitwiseCrc(bytes), Crc32.Compute(bytes));
        Assert.Equal(Crc32.Compute(bytes), Crc32.Append(Crc32.Compute(bytes.AsSpan(0, 333)), bytes.AsSpan(333)));
    }

    public static TheoryData<PngColorType, int, int, string> Images() => new()
    {
        { PngColorType.Gray, 1, 1, "noise" },
        { PngColorType.Gray, 17, 5, "gradient" },
        { PngColorType.Rgb, 3, 7, "noise" },
        { PngColorType.Rgb, 64, 33, "gradient" },
        { PngColorType.Rgba, 13, 11, "noise" },
        { PngColorType.Rgba, 40, 40, "gradient" },
        { PngColorType.Rgb, 800, 600, "noise" },      // > 1 MiB of zlib data: several IDAT chunks
    };

    [Theory]
    [MemberData(nameof(Images))]
    public void Decodes_to_the_same_pixels(PngColorType color, int width, int height, string content)
    {
        int bpp = Png.BytesPerPixel(color);
        var pixels = new byte[width * height * bpp];
        if (content == "noise")
            new Random(width * 31 + height).NextBytes(pixels);
        else
            for (int i = 0; i < pixels.Length; i++)
                pixels[i] = (byte)(i / bpp % width * 3 + i / (width * bpp) * 5 + i % bpp * 40);

        byte[] file = Png.Encode(pixels, width, height, color);
        var decoded = PngFile.Decode(file);
        Assert.Equal(width, decoded.Width);
        Assert.Equal(height, decoded.Height);
        Assert.Equal((int)color, decoded.ColorType);
        Assert.Equal(pixels, decoded.Pixels);
        Assert.Equal(file, Png.Encode(pixels, width, height, color));   // deterministic
        if (width * height * bpp > 2 * Png.MaxIdatBytes)
            Assert.True(decoded.Chunks.Count(c => c.Type == "IDAT") > 1);
        Assert.All(decoded.Chunks, c => Assert.True(c.Data.Length <= Png.MaxIdatBytes));
        if (content == "gradient" && height > 1)
            Assert.Contains(decoded.FilterTypes, f => f != 0);   // smooth rows pick a predicting filter
    }

    [Fact]
    public void Writes_the_file_atomically()
    {
        string path = _dir.File("image.png");
        byte[] pixels = [0, 64, 128, 255];
        Png.Write(path, pixels, 2, 2, PngColorType.Gray);
        Assert.Equal(pixels, PngFile.Decode(File.ReadAllBytes(path)).Pixels);
        Assert.Equal(["image.png"], _dir.Entries());
    }

    [Fact]
    public void Invalid_images_create_no_file()
    {
        string path = _dir.File("bad.png");
        Assert.Throws<ArgumentException>(() => Png.Write(path, new byte[5], 2, 2, PngColorType.Rgb));
        Assert.Throws<ArgumentException>(() => Png.Write(path, [], 0, 1, PngColorType.Gray));
        Assert.Throws<ArgumentException>(() => Png.Write(path, new byte[4], 2, 2, (PngColorType)3));
        Assert.Empty(_dir.Entries());
    }

    [Fact]
    public void A_failed_write_leaves_nothing_behind_and_keeps_the_old_file()
    {
        string path = _dir.File("out.png");
        File.WriteAllText(path, "old");
        var e = Assert.Throws<IOException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write(new byte[100_000]);     // partly written …
            throw new IOException("disk full");  // … then the write fails
        }));
        Assert.Equal("disk full", e.Message);
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Equal(["out.png"], _dir.Entries());

        string fresh = _dir.File("fresh.png");
        Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(fresh, _ => throw new InvalidOperationException()));
        Assert.Equal(["out.png"], _dir.Entries());
    }

    [Fact]
    public void A_failed_rename_leaves_no_temporary_file()
    {
        // The destination is a directory: everything is written, then the final rename fails.
        string path = _dir.File("taken");
        Directory.CreateDirectory(path);
        Assert.ThrowsAny<IOException>(() => Png.Write(path, [1, 2, 3], 1, 1, PngColorType.Rgb));
        Assert.Equal(["taken"], _dir.Entries());
        Assert.Empty(Directory.GetFileSystemEntries(path));
    }

    [Fact]
    public void Write_text_uses_Utf8_without_bom_and_line_feeds()
    {
        string path = _dir.File("a.csv");
        AtomicFile.WriteText(path, w =>
        {
            w.WriteLine("step,block");
            w.WriteLine("1,ü");
        });
        Assert.Equal(Encoding.UTF8.GetBytes("step,block\n1,ü\n"), File.ReadAllBytes(path));
    }

    [Fact]
    public void Rgb_image_clips_drawing_and_saves()
    {
        var image = new RgbImage(4, 3, Rgb.White);
        image.FillRectangle(-2, -2, 4, 4, new Rgb(255, 0, 0));  // only (0..1, 0..1) is inside
        image[10, 10] = Rgb.Black;                               // outside: ignored
        Assert.Equal(new Rgb(255, 0, 0), image[1, 1]);
        Assert.Equal(Rgb.White, image[2, 1]);
        Assert.Equal(Rgb.White, image[0, 2]);
        Assert.Throws<ArgumentOutOfRangeException>(() => image[4, 0]);
        string path = _dir.File("rgb.png");
        image.SavePng(path);
        Assert.Equal(image.Pixels, PngFile.Decode(File.ReadAllBytes(path)).Pixels);
        Assert.Equal(new Rgb(0x21, 0x91, 0x8C), Rgb.FromHex("#21918c"));
        Assert.Equal("#21918C", new Rgb(0x21, 0x91, 0x8C).ToString());
    }
}

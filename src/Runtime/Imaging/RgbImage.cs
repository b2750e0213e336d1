namespace BlockDance.Runtime.Imaging;

/// <summary>An 8-bit sRGB colour.</summary>
public readonly record struct Rgb(byte R, byte G, byte B)
{
    /// <summary>Black, #000000.</summary>
    public static Rgb Black => new(0, 0, 0);
    /// <summary>White, #FFFFFF.</summary>
    public static Rgb White => new(255, 255, 255);

    /// <summary>Parses <c>"#RRGGBB"</c> or <c>"RRGGBB"</c>.</summary>
    public static Rgb FromHex(string hex)
    {
        ArgumentNullException.ThrowIfNull(hex);
        var s = hex.AsSpan().TrimStart('#');
        if (s.Length != 6 || !uint.TryParse(s, System.Globalization.NumberStyles.AllowHexSpecifier, null, out uint v))
            throw new ArgumentException($"'{hex}' is not a colour of the form #RRGGBB", nameof(hex));
        return new((byte)(v >> 16), (byte)(v >> 8), (byte)v);
    }

    /// <summary>The colour as "#RRGGBB".</summary>
    public override string ToString() => $"#{R:X2}{G:X2}{B:X2}";
}

/// <summary>
/// An RGB image in host memory: <see cref="Pixels"/> holds R, G, B bytes per pixel, row-major, top row first (the
/// layout <see cref="Png"/> writes). Drawing outside the image is clipped, so plots can be drawn without bounds checks.
/// </summary>
public sealed class RgbImage
{
    /// <summary>A <paramref name="width"/> × <paramref name="height"/> image filled with <paramref name="background"/>.</summary>
    public RgbImage(int width, int height, Rgb background)
    {
        if (width <= 0 || height <= 0)
            throw new ArgumentException($"an image needs a positive width and height, not {width} × {height}");
        if ((long)width * height * 3 > Array.MaxLength)
            throw new ArgumentException($"a {width} × {height} RGB image is too large");
        Width = width;
        Height = height;
        Pixels = new byte[width * height * 3];
        FillRectangle(0, 0, width, height, background);
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }
    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>R, G, B per pixel, row-major; <c>Pixels[3 * (y * Width + x) + channel]</c>.</summary>
    public byte[] Pixels { get; }

    /// <summary>The pixel at column <paramref name="x"/>, row <paramref name="y"/>; setting outside the image does nothing.</summary>
    public Rgb this[int x, int y]
    {
        get
        {
            if ((uint)x >= (uint)Width || (uint)y >= (uint)Height)
                throw new ArgumentOutOfRangeException(nameof(x), $"pixel ({x}, {y}) is outside the {Width} × {Height} image");
            int i = 3 * (y * Width + x);
            return new Rgb(Pixels[i], Pixels[i + 1], Pixels[i + 2]);
        }
        set
        {
            if ((uint)x >= (uint)Width || (uint)y >= (uint)Height)
                return;
            int i = 3 * (y * Width + x);
            Pixels[i] = value.R;
            Pixels[i + 1] = value.G;
            Pixels[i + 2] = value.B;
        }
    }

    /// <summary>Fills the rectangle with top-left corner (<paramref name="x"/>, <paramref name="y"/>), clipped to the image.</summary>
    public void FillRectangle(int x, int y, int width, int height, Rgb color)
    {
        int x0 = Math.Max(0, x), y0 = Math.Max(0, y);
        int x1 = (int)Math.Min(Width, (long)x + width), y1 = (int)Math.Min(Height, (long)y + height);
        for (int yy = y0; yy < y1; yy++)
            for (int xx = x0; xx < x1; xx++)
                this[xx, yy] = color;
    }

    /// <summary>Draws a one-pixel outline just inside the rectangle.</summary>
    public void DrawRectangle(int x, int y, int width, int height, Rgb color)
    {
        FillRectangle(x, y, width, 1, color);
        FillRectangle(x, y + height - 1, width, 1, color);
        FillRectangle(x, y, 1, height, color);
        FillRectangle(x + width - 1, y, 1, height, color);
    }

    /// <summary>The image as a PNG file in memory.</summary>
    public byte[] EncodePng() => Png.Encode(Pixels, Width, Height, PngColorType.Rgb);

    /// <summary>Writes the image as a PNG file, atomically (see <see cref="Png.Write"/>).</summary>
    public void SavePng(string path) => Png.Write(path, Pixels, Width, Height, PngColorType.Rgb);
}

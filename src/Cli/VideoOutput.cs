using BlockDance.Runtime.IO;
using BlockDance.Runtime.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.PixelFormats;

namespace BlockDance.Cli;

/// <summary>
/// What a person looks at after generating clips with a pixel-space video model: an animated, looping GIF with one tile
/// per clip, and a PNG frame strip with one row per clip and one column per frame. Pixel values map from [−1, 1] as in
/// the image grid (<see cref="ImageGrid"/>). The GIF is encoded by SixLabors.ImageSharp.
/// </summary>
public static class VideoOutput
{
    /// <summary>Delay between GIF frames in hundredths of a second (8 frames ≈ 1 s).</summary>
    public const int FrameDelay = 12;

    /// <summary>
    /// Writes <paramref name="path"/> (PNG): clip i is row i, frame f column f. clips: [n, F, C, H, W] row-major.
    /// </summary>
    public static void WriteFrameStrip(string path, ReadOnlySpan<float> clips, int n, int channels, int size)
    {
        var grid = ImageGrid.Compose(clips, channels, size, size, rows: n);
        Png.Write(path, grid.Pixels, grid.Width, grid.Height, PngColorType.Rgb);
    }

    /// <summary>
    /// Writes <paramref name="path"/> (GIF, looping forever): frame f of the animation shows frame f of every clip, the
    /// clips as tiles in a grid of <paramref name="rows"/> rows, in order. clips: [n, F, C, H, W] row-major.
    /// </summary>
    public static void WriteGif(string path, float[] clips, int n, int frames, int channels, int size, int rows)
    {
        if (n <= 0 || frames <= 0 || clips.Length != (long)n * frames * channels * size * size)
            throw new ArgumentException($"{clips.Length} values are not {n} clips of {frames} frames of [{channels}, {size}, {size}]");
        long frame = (long)channels * size * size;
        var tiles = new float[n * frame];
        Image<Rgb24>? gif = null;
        try
        {
            for (int f = 0; f < frames; f++)
            {
                for (int i = 0; i < n; i++)
                    Array.Copy(clips, ((long)i * frames + f) * frame, tiles, i * frame, frame);
                var grid = ImageGrid.Compose(tiles, channels, size, size, rows);
                using var image = Image.LoadPixelData<Rgb24>(grid.Pixels, grid.Width, grid.Height);
                image.Frames.RootFrame.Metadata.GetGifMetadata().FrameDelay = FrameDelay;
                if (gif is null)
                    gif = image.Clone();
                else
                    gif.Frames.AddFrame(image.Frames.RootFrame);
            }
            gif!.Metadata.GetGifMetadata().RepeatCount = 0;   // loop forever
            AtomicFile.Write(path, stream => gif.SaveAsGif(stream, new GifEncoder { ColorTableMode = GifColorTableMode.Local }));
        }
        finally
        {
            gif?.Dispose();
        }
    }

    /// <summary>Grid rows for n tiles: one per class when the labels come in equal runs of each class (the default), else near-square.</summary>
    public static int Rows(IReadOnlyList<int> labels)
    {
        int classes = labels.Distinct().Count();
        int run = labels.Count / classes;
        bool grouped = labels.Count % classes == 0 && Enumerable.Range(0, labels.Count).All(i => labels[i] == labels[i / run * run]);
        return grouped ? classes : (int)Math.Ceiling(Math.Sqrt(labels.Count));
    }
}

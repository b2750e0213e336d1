using BlockDance.Runtime.Safetensors;
using BlockDance.Tests.Metrics;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;

namespace BlockDance.Tests.Video;

/// <summary><c>blockdance generate</c> with a pixel-space video model: latents [n, F, C, H, W], an animated GIF and a frame strip.</summary>
public sealed class VideoOutputTests
{
    /// <summary>The random 3-channel Latte fixture re-saved with <c>pixel_space=true</c> (as the bundled models are).</summary>
    private static string PixelSpaceCopy(Fixtures.TempDir dir)
    {
        using var source = SafetensorsFile.Open(Latte.Weights("latte_small"));
        var writer = new SafetensorsWriter();
        foreach (var info in source.Tensors)
            writer.Add(info.Name, (ReadOnlySpan<float>)source.ReadFloat32(info.Name), info.ShapeToArray());
        foreach (var (key, value) in source.Metadata)
            writer.SetMetadata(key, value);
        writer.SetMetadata("pixel_space", "true");
        string path = dir.File("latte_pixels.safetensors");
        writer.Save(path);
        return path;
    }

    // ImageGrid's mapping of [−1, 1] to bytes: clamp, then floor(255·(v + 1)/2 + 0.5).
    private static int Byte(float v) => (int)Math.Floor(255 * (Math.Clamp((double)v, -1, 1) + 1) / 2 + 0.5);

    [Fact]
    public void Generate_writes_latents_a_looping_gif_and_a_frame_strip()
    {
        using var dir = new Fixtures.TempDir();
        string weights = PixelSpaceCopy(dir);
        string latents = dir.File("l.safetensors"), gif = dir.File("s.gif"), strip = dir.File("f.png");
        var (code, output, error) = Cli.CliTests.Run("generate", "--weights", weights, "--labels", "0,1,1", "--steps", "3", "--quiet",
            "--out", latents, "--gif", gif, "--frames", strip);
        Assert.True(code == 0, output + error);
        Assert.Contains("3 clip(s) of 3 frames", output, StringComparison.Ordinal);

        using var file = SafetensorsFile.Open(latents);
        Assert.Equal([3, 3, 3, 8, 8], file["latent"].ShapeToArray());   // [n, F, C, H, W]
        var clips = file.ReadFloat32("latent");
        float At(int clip, int frame, int ch, int y, int x) => clips[((((clip * 3) + frame) * 3 + ch) * 8 + y) * 8 + x];

        // Frame strip: row = clip, column = frame; 8-pixel tiles with 2 pixels of padding.
        var png = PngFile.Decode(File.ReadAllBytes(strip));
        Assert.Equal((32, 32), (png.Width, png.Height));
        for (int clip = 0; clip < 3; clip++)
            for (int frame = 0; frame < 3; frame++)
                for (int ch = 0; ch < 3; ch++)
                {
                    int px = 2 + frame * 10 + 5, py = 2 + clip * 10 + 3;
                    Assert.Equal(Byte(At(clip, frame, ch, 3, 5)), png.Pixels[(py * png.Width + px) * 3 + ch]);
                }

        // GIF: one animation frame per video frame, looping forever, each a 2×2 grid of clip tiles (3 clips, mixed labels).
        using var image = Image.Load<Rgb24>(gif);
        Assert.Equal(3, image.Frames.Count);
        Assert.Equal(0, image.Metadata.GetGifMetadata().RepeatCount);
        Assert.Equal((22, 22), (image.Width, image.Height));
        for (int frame = 0; frame < 3; frame++)
        {
            var f = image.Frames[frame];
            Assert.True(f.Metadata.GetGifMetadata().FrameDelay > 0);
            for (int clip = 0; clip < 3; clip++)
            {
                int px = 2 + clip % 2 * 10 + 6, py = 2 + clip / 2 * 10 + 1;
                var pixel = f[px, py];
                // GIF keeps at most 256 colours per frame: allow the palette's rounding.
                Assert.InRange(pixel.R, Byte(At(clip, frame, 0, 1, 6)) - 12, Byte(At(clip, frame, 0, 1, 6)) + 12);
                Assert.InRange(pixel.G, Byte(At(clip, frame, 1, 1, 6)) - 12, Byte(At(clip, frame, 1, 1, 6)) + 12);
                Assert.InRange(pixel.B, Byte(At(clip, frame, 2, 1, 6)) - 12, Byte(At(clip, frame, 2, 1, 6)) + 12);
            }
        }
    }

    [Fact]
    public void An_unknown_bundled_model_name_is_refused_with_the_names()
    {
        var (code, _, error) = Cli.CliTests.Run("generate", "--model", "cats", "--steps", "1");
        Assert.NotEqual(0, code);
        Assert.Contains("shapes, shapes-video", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Asking_a_video_pipeline_for_its_image_model_says_so()
    {
        // Every command runs Latte now (calibrate too, since adaptive policies decide per clip); the image-only API
        // (DitPipeline.Model, which a caller driving an image forward uses) still refuses a video model clearly.
        using var pipeline = BlockDance.Dit.Pipeline.DitPipeline.Open(Latte.Weights("latte_small"));
        var e = Assert.Throws<BlockDance.Runtime.InvalidRequestException>(() => pipeline.Model);
        Assert.Contains("Latte video model", e.Message, StringComparison.Ordinal);
    }
}

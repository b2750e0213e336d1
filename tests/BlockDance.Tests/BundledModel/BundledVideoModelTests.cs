using System.Globalization;
using System.Text.Json;
using BlockDance.Dit;
using BlockDance.Dit.Pipeline;
using Xunit;

namespace BlockDance.Tests.BundledModel;

/// <summary>The small Latte video model the project trains and ships (models/latte-shapes-video-32.safetensors), and the
/// motion-aware classifier that scores its clips (models/latte-clip-classifier.safetensors).</summary>
public sealed class BundledVideoModelTests
{
    private static string ModelPath => DitPipeline.FindBundled("shapes-video")
        ?? throw new FileNotFoundException("the bundled video model models/latte-shapes-video-32.safetensors is missing from the repository");

    [Fact]
    public void The_committed_video_weights_load_and_their_metadata_describes_them()
    {
        using var checkpoint = DitCheckpoint.Open(ModelPath);
        var c = checkpoint.Config;
        var meta = checkpoint.File.Metadata;
        var ci = CultureInfo.InvariantCulture;
        Assert.True(c.Frames >= 8, $"{c.Frames} frames: the issue asks for at least 8");
        Assert.True(c.Depth >= 12, $"depth {c.Depth}: the issue asks for at least 12 blocks");
        Assert.True(c.NumClasses >= 6, $"{c.NumClasses} classes: the issue asks for at least 6");
        Assert.Equal((3, 32), (c.InChannels, c.InputSize));    // 32×32 RGB pixels
        Assert.True(c.LearnSigma);
        Assert.Equal("true", meta["pixel_space"]);
        Assert.Equal(c.Frames.ToString(ci), meta["num_frames"]);
        Assert.Equal(c.Heads.ToString(ci), meta["num_heads"]);
        Assert.Equal(c.NumClasses, meta["class_names"].Split(',').Length);
        Assert.True(int.Parse(meta["train_steps"], ci) > 0);
        Assert.True(new FileInfo(ModelPath).Length <= 32 << 20, "the bundled video model must stay under 32 MB");
    }

    /// <summary>
    /// Clips of every class, generated as the README shows (<c>generate --model shapes-video</c>, DDIM 50, the default
    /// guidance 4) and scored by the motion-aware clip classifier (tools/latte_clip_classifier.py, PyTorch; held-out
    /// accuracy 0.87 on real clips, 0.33 with the frames shuffled): class accuracy above chance and a frame-to-frame
    /// change close to that of real clips. See <see cref="MinimumAccuracy"/> and <see cref="MaximumFrameChange"/>.
    /// </summary>
    [Fact]
    public void Generated_clips_are_classified_as_their_class_by_the_motion_aware_classifier()
    {
        if (!BundledModelTests.PythonWithTorch(out string why))
            Assert.Skip($"the classifier needs Debian's PyTorch: {why} (eng/install-deps.sh test installs it)");
        using var dir = new Fixtures.TempDir();
        string clips = dir.File("clips.safetensors");
        var (code, output, err) = Cli.CliTests.Run("generate", "--model", "shapes-video", "--per-class", "4", "--steps", "50", "--seed", "2026",
            "--quiet", "--out", clips, "--gif", dir.File("samples.gif"), "--frames", dir.File("frames.png"));
        Assert.True(code == 0, err);
        Assert.Contains("24 clip(s) of 8 frames", output, StringComparison.Ordinal);
        string json = BundledModelTests.RunPython("tools/latte_clip_classifier.py", "score", "--clips", clips, "--no-floor");
        using var doc = JsonDocument.Parse(json[json.IndexOf('{', StringComparison.Ordinal)..]);
        double accuracy = doc.RootElement.GetProperty("accuracy").GetDouble();
        double frameChange = doc.RootElement.GetProperty("frame_change").GetDouble();
        Assert.True(accuracy >= MinimumAccuracy, $"class accuracy {accuracy:P1} of the generated clips is below {MinimumAccuracy:P1}: {json}");
        Assert.True(frameChange <= MaximumFrameChange, $"mean frame-to-frame change {frameChange:F4} of the generated clips is above {MaximumFrameChange}: {json}");
    }

    /// <summary>
    /// 24 clips (4 per class), seed 2026, DDIM 50, guidance 4: measured 79.2 % (19 of 24: disc-right 0/4, square-right
    /// 3/4, every other class 4/4) with the shipped depth-24 model, and 75.0 % with seed 1 (models/README.md). Chance is
    /// 1/6 = 16.7 % (4 of 24), which is also what a model that always produces one class scores; the bound asks for 14
    /// of 24 (3.5× chance) on the seed fixed beforehand (2026, as the image test), five clips below the measurement.
    /// The previous bundled model (1650 steps: 9 of 24, no sliding class) and the depth-12 one before it (6 of 24) fail it.
    /// </summary>
    private const double MinimumAccuracy = 14.0 / 24;

    /// <summary>
    /// Mean |x[f+1] − x[f]| over the same clips: measured 0.076 with the shipped model (real clips of the same
    /// classes: 0.039; the previous model 0.080, a step-430 checkpoint of its run, whose frames flicker, 0.31; the
    /// earlier depth-12 model 0.065).
    /// </summary>
    private const double MaximumFrameChange = 0.1;
}

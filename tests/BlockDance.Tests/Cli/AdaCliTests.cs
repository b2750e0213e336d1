using Xunit;

namespace BlockDance.Tests.Cli;

/// <summary><c>--cache ada</c> in generate, compare and plan, with the fixture networks on the tiny DiT and the Latte fixture.</summary>
public sealed class AdaCliTests
{
    private static string Ada => "ada:weights=" + Fixtures.Path("ada_small.safetensors");

    [Fact]
    public void Generate_with_ada_reports_each_images_plan()
    {
        using var dir = new Fixtures.TempDir();
        var (code, _, err) = CliTests.Run("generate", "--weights", Fixtures.TinyOriginal, "--labels", "0,3,5,7,9,2", "--steps", "10",
            "--seed", "4", "--cache", Ada, "--quiet", "--out", dir.File("a.safetensors"), "--report", dir.File("a.json"));
        Assert.True(code == 0, err);
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(dir.File("a.json")));
        var plans = json.RootElement.GetProperty("image_plans").EnumerateArray().Select(p => p.GetString()!).ToArray();
        Assert.Equal(6, plans.Length);
        Assert.All(plans, p => Assert.StartsWith("FFFC", p, StringComparison.Ordinal));
        Assert.Contains(plans, p => p.Contains('R'));
    }

    [Fact]
    public void Compare_with_ada_runs_and_a_wrong_step_count_names_the_field()
    {
        var (code, output, err) = CliTests.Run("compare", "--weights", Fixtures.TinyOriginal, "--steps", "10", "--labels", "1,5", "--cache", Ada, "--quiet");
        Assert.True(code == 0, err);
        Assert.Contains("SSIM", output, StringComparison.Ordinal);
        var (bad, _, badErr) = CliTests.Run("generate", "--weights", Fixtures.TinyOriginal, "--steps", "12", "--labels", "1", "--cache", Ada, "--quiet");
        Assert.NotEqual(0, bad);
        Assert.Contains("steps = 10", badErr, StringComparison.Ordinal);
    }

    private static string VideoAda => "ada:weights=" + Fixtures.Path("ada_video.safetensors");

    [Fact]
    public void Generate_and_compare_with_a_video_network_plan_each_clip()
    {
        using var dir = new Fixtures.TempDir();
        string latte = Fixtures.Path("latte_deep.safetensors");
        var (code, _, err) = CliTests.Run("generate", "--weights", latte, "--labels", "0,3,5,1", "--steps", "10",
            "--seed", "4", "--cache", VideoAda, "--quiet", "--out", dir.File("v.safetensors"), "--report", dir.File("v.json"));
        Assert.True(code == 0, err);
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(dir.File("v.json")));
        var plans = json.RootElement.GetProperty("image_plans").EnumerateArray().Select(p => p.GetString()!).ToArray();
        Assert.Equal(4, plans.Length);   // one plan per clip, not per frame
        Assert.All(plans, p => Assert.StartsWith("FFFC", p, StringComparison.Ordinal));
        Assert.Equal(4, json.RootElement.GetProperty("image_macs").GetArrayLength());
        var (cmp, output, cmpErr) = CliTests.Run("compare", "--weights", latte, "--steps", "10", "--labels", "1,5", "--cache", VideoAda, "--quiet");
        Assert.True(cmp == 0, cmpErr);
        Assert.Contains("PSNR", output, StringComparison.Ordinal);
        var (bad, _, badErr) = CliTests.Run("generate", "--weights", latte, "--steps", "10", "--labels", "1", "--cache", Ada, "--quiet",
            "--out", dir.File("bad.safetensors"));
        Assert.NotEqual(0, bad);
        Assert.Contains("num_frames", badErr, StringComparison.Ordinal);
    }

    [Fact]
    public void Compare_on_the_bundled_video_model_runs_an_adaptive_policy_and_measures_ssim_frame_by_frame()
    {
        var (code, output, err) = CliTests.Run("compare", "--model", "shapes-video", "--labels", "2", "--steps", "4", "--cache", "teacache:threshold=0.2", "--quiet");
        Assert.True(code == 0, err);
        var ssim = output.Split('\n').Single(l => l.StartsWith("SSIM", StringComparison.Ordinal));
        Assert.DoesNotContain("n/a", ssim, StringComparison.Ordinal);
    }

    [Fact]
    public void Calibrate_searches_an_adaptive_threshold_on_a_video_model()
    {
        var (code, output, err) = CliTests.Run("calibrate", "--weights", Fixtures.Path("latte_deep.safetensors"), "--labels", "1,4", "--steps", "10",
            "--cache", "fbcache", "--target-speedup", "1.2", "--iterations", "2", "--quiet");
        Assert.True(code == 0, err);
        Assert.Contains("--cache fbcache:threshold=", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Plan_says_ada_is_decided_at_run_time()
    {
        var (code, output, err) = CliTests.Run("plan", "--depth", "12", "--cache", "ada");
        Assert.True(code == 0, err);
        Assert.Contains("decided at run time", output, StringComparison.Ordinal);
    }
}

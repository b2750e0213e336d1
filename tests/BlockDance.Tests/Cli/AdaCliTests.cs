using Xunit;

namespace BlockDance.Tests.Cli;

/// <summary><c>--cache ada</c> in generate, compare and plan, with the fixture network on the tiny DiT.</summary>
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

    [Fact]
    public void Plan_says_ada_is_decided_at_run_time()
    {
        var (code, output, err) = CliTests.Run("plan", "--depth", "12", "--cache", "ada");
        Assert.True(code == 0, err);
        Assert.Contains("decided at run time", output, StringComparison.Ordinal);
    }
}

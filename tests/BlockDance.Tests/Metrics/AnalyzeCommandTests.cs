using BlockDance.Tests.Cli;
using Xunit;

namespace BlockDance.Tests.Metrics;

/// <summary>The plot options of <c>blockdance analyze</c>: formats, colour scale, the cache window on the figures.</summary>
public sealed class AnalyzeCommandTests
{
    [Fact]
    public void Writes_svg_and_png_and_marks_the_policys_window()
    {
        using var dir = new Fixtures.TempDir();
        var (code, output, err) = CliTests.Run("analyze", "--weights", Fixtures.TinyOriginal, "--steps", "10", "--labels", "2", "--quiet",
            "--cache", "blockdance:n=2,boundary=2,start=0.2,end=0.9", "--scale", "log", "--out", dir.Root);
        Assert.True(code == 0, err);
        foreach (string name in new[] { "block_cosine", "block_rel_l1", "step_similarity" })
        {
            Assert.Contains(name + ".svg", output, StringComparison.Ordinal);
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(Path.Combine(dir.Root, name + ".png"))[..4]);
            string svg = File.ReadAllText(Path.Combine(dir.Root, name + ".svg"));
            Assert.Contains("cache window of blockdance:n=2,boundary=2", svg, StringComparison.Ordinal);
            Assert.Contains("(log scale)", svg, StringComparison.Ordinal);
        }
        // Reuse steps skip blocks 0-1: those cells have no data, and the legend says so.
        Assert.Contains("no data", File.ReadAllText(Path.Combine(dir.Root, "block_cosine.svg")), StringComparison.Ordinal);
    }

    [Fact]
    public void Only_the_requested_format()
    {
        using var dir = new Fixtures.TempDir();
        var (code, _, err) = CliTests.Run("analyze", "--weights", Fixtures.TinyOriginal, "--steps", "4", "--labels", "2", "--quiet",
            "--plots", "svg", "--out", dir.Root);
        Assert.True(code == 0, err);
        Assert.Empty(Directory.GetFiles(dir.Root, "*.png"));
        Assert.Equal(3, Directory.GetFiles(dir.Root, "*.svg").Length);
    }

    [Theory]
    [InlineData("--scale", "cubic", "--scale: unknown colour scale 'cubic'")]
    [InlineData("--scale", "clip:30", "--scale: the clip percentile must be in (50, 100], not 30")]
    [InlineData("--plots", "gif", "--plots 'gif': use png, svg or both")]
    public void Bad_plot_options_are_usage_errors(string option, string value, string message)
    {
        using var dir = new Fixtures.TempDir();
        var (code, _, err) = CliTests.Run("analyze", "--weights", Fixtures.TinyOriginal, "--steps", "4", "--quiet", option, value, "--out", dir.Root);
        Assert.Equal(2, code);
        Assert.Contains(message, err, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(dir.Root));
    }
}

using System.Globalization;
using Xunit;

namespace BlockDance.Tests.Video;

/// <summary><c>bench forward</c> and <c>analyze</c> on a Latte video model (issue 13, part 6).</summary>
public sealed class VideoBenchmarkCommandsTests
{
    [Fact]
    public void Bench_forward_times_a_latte_forward_of_whole_clips()
    {
        var (code, output, error) = Cli.CliTests.Run("bench", "forward", "--weights", Latte.Weights("latte_small"), "--repeat", "3", "--warmup", "1");
        Assert.True(code == 0, output + error);
        Assert.Contains("batch 2 clips of 3 frames", output, StringComparison.Ordinal);
        string last = output.TrimEnd().Split('\n')[^1];
        Assert.StartsWith("median_ms=", last, StringComparison.Ordinal);
        Assert.True(double.Parse(last["median_ms=".Length..], CultureInfo.InvariantCulture) > 0);
    }

    [Fact]
    public void Analyze_records_every_block_of_a_latte_model_at_every_step()
    {
        using var dir = new Fixtures.TempDir();
        var (code, output, error) = Cli.CliTests.Run("analyze", "--weights", Latte.Weights("latte_deep"), "--labels", "0,1", "--steps", "5",
            "--blocks", "1", "--plots", "png", "--quiet", "--out", dir.Root);
        Assert.True(code == 0, output + error);
        var rows = File.ReadAllLines(Path.Combine(dir.Root, "block_similarity.csv")).Skip(1)
            .Select(l => l.Split(',').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray()).ToArray();
        // latte_deep has 4 blocks (spatial and temporal alternating): steps 1–4 against their previous step, each block.
        Assert.Equal(4 * 4, rows.Length);
        Assert.Equal([0, 1, 2, 3], rows.Select(r => (int)r[1]).Distinct().Order());
        Assert.All(rows, r => Assert.InRange(r[2], -1.0, 1.0 + 1e-9));        // cosine
        Assert.All(rows, r => Assert.True(r[3] > 0 && double.IsFinite(r[3])));  // relative L1: noise changes every step
    }
}

using BlockDance.Cli;
using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Kernels.Cpu;
using Xunit;

namespace BlockDance.Tests.Caching;

/// <summary>The threshold search on curves whose answer is known, and <c>blockdance calibrate</c> end to end.</summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class CalibrationTests
{
    // A model of a policy: speed-up 1 + 2·t (saturating at 3), SSIM 1 − t.
    private static CalibrationPoint Curve(double t) => new(t, Math.Min(3, 1 + 2 * t), 1 - t, 40, 1 + 2 * t);

    [Fact]
    public void Bisection_finds_the_smallest_threshold_reaching_a_speedup()
    {
        var (answer, points) = ThresholdSearch.Search(Curve, CalibrationGoal.Speedup, 1.5, start: 0.1, iterations: 12);
        Assert.NotNull(answer);
        Assert.InRange(answer.Value.Threshold, 0.25, 0.25 + 0.4 / 4096);   // bracket [0.2, 0.4] halved 12 times
        Assert.True(answer.Value.Speedup >= 1.5);
        Assert.Equal(0.0, points[0].Threshold);
        Assert.Contains(points, p => p.Threshold == 0.4);                  // 0.1 → 0.2 → 0.4 brackets 0.25
    }

    [Fact]
    public void Bisection_finds_the_largest_threshold_keeping_an_ssim()
    {
        var (answer, _) = ThresholdSearch.Search(Curve, CalibrationGoal.Ssim, 0.95, start: 0.2, iterations: 12);
        Assert.InRange(answer!.Value.Threshold, 0.05 - 0.2 / 4096, 0.05);
        Assert.True(answer.Value.Ssim >= 0.95);
    }

    [Fact]
    public void An_unreachable_speedup_gives_no_answer()
    {
        var (answer, points) = ThresholdSearch.Search(Curve, CalibrationGoal.Speedup, 5, start: 0.1, iterations: 4);
        Assert.Null(answer);
        Assert.Equal(ThresholdSearch.MaxExpansions + 2, points.Count);
    }

    [Fact]
    public void Calibrate_prints_a_threshold_whose_run_reaches_the_target()
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = Program.Run(["calibrate", "--weights", Fixtures.TinyOriginal, "--cache", "fbcache", "--target-speedup", "1.3",
            "--labels", "1,6,3", "--steps", "10", "--iterations", "5", "--quiet"], new Console2(o, e, Interactive: false));
        Assert.True(code == 0, o + "\n" + e);
        string use = o.ToString().Split('\n').Single(l => l.StartsWith("use", StringComparison.Ordinal));
        string spec = use.Split("--cache ")[1].Trim();
        Assert.StartsWith("fbcache:threshold=", spec, StringComparison.Ordinal);
        // Run the printed policy on the same images: its speed-up (from MACs) reaches the target.
        using var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
        using var ops = new CpuOps();
        using var model = DitModel.Load(checkpoint, ops);
        using var run = new SamplingRun(model, new GenerationRequest { Labels = [1, 6, 3], Steps = 10, Cache = CachePolicy.Parse(spec) });
        run.Run();
        Assert.True(run.Report.IdealSpeedup >= 1.3, $"{spec}: {run.Report.IdealSpeedup}");
    }

    [Fact]
    public void Plan_says_an_adaptive_policy_decides_at_run_time()
    {
        var o = new StringWriter();
        Assert.Equal(0, Program.Run(["plan", "--cache", "bwcache:delta=0.1"], new Console2(o, new StringWriter(), Interactive: false)));
        Assert.Contains("decides each step at run time", o.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("FFFF", o.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--cache", "blockdance:n=2", "adaptive policy")]
    [InlineData("--target-ssim", "0.9", "exactly one")]
    public void Calibrate_rejects_a_static_policy_and_two_targets(string option, string value, string why)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        string[] args = option == "--cache"
            ? ["calibrate", "--weights", Fixtures.TinyOriginal, "--target-speedup", "1.5", option, value]
            : ["calibrate", "--weights", Fixtures.TinyOriginal, "--target-speedup", "1.5", option, value];
        Assert.Equal(2, Program.Run(args, new Console2(o, e, Interactive: false)));
        Assert.Contains(why, e.ToString(), StringComparison.Ordinal);
    }
}

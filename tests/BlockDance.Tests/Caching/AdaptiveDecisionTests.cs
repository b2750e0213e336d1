using BlockDance.Dit.Caching;
using BlockDance.Runtime;
using Xunit;

namespace BlockDance.Tests.Caching;

/// <summary>
/// The decision rules of BWCache, TeaCache and First-Block-Cache driven by constructed indicator sequences (no model),
/// where the right plan is worked out by hand from the rules in docs/caching.md.
/// </summary>
public sealed class AdaptiveDecisionTests
{
    /// <summary>
    /// Drives a controller like the sampling run does: each step the pre-decision probe (TeaCache, FBCache) is the
    /// sequence's value; BWCache's post-step indicator is the value of the step when it computed (Cache), else NaN.
    /// Returns each image's letters.
    /// </summary>
    private static string[] Drive(CachePolicy policy, int steps, params float[][] perImage)
    {
        int images = perImage.Length;
        var c = policy.CreateController(steps, 12, images);
        var letters = Enumerable.Range(0, images).Select(_ => new char[steps]).ToArray();
        var kinds = new StepKind[images];
        var probe = new float[images];
        var post = new float[images];
        using var latent = CpuDevice.Instance.Allocate(DType.F32, 1);
        for (int k = 0; k < steps; k++)
        {
            for (int i = 0; i < images; i++)
                probe[i] = perImage[i][k];
            bool pre = c.Indicator is CacheIndicator.ModulatedInput or CacheIndicator.HeadResidual;
            c.Decide(k, pre ? probe : [], kinds);
            for (int i = 0; i < images; i++)
            {
                letters[i][k] = StepPlan.Letter(kinds[i]);
                post[i] = kinds[i] == StepKind.Cache ? perImage[i][k] : float.NaN;
            }
            c.Observe(new StepObservation(k, kinds, pre ? probe : post, latent));
        }
        return letters.Select(l => new string(l)).ToArray();
    }

    private static float[] Seq(int steps, Func<int, float> f) => Enumerable.Range(0, steps).Select(f).ToArray();

    [Fact]
    public void BWCache_triggers_below_delta_reuses_the_first_half_of_the_rest_with_refreshes_and_computes_the_tail()
    {
        // 20 steps, R = 2: indicator 0.3, 0.2, 0.1 at steps 1-3 → trigger at step 3 (0.1 < 0.15). The rest after it is
        // steps 4-19 (16 steps); the first half, 4-11, reuses: S S (R = 2) then a refresh C, … ; 12-19 are computed (F).
        var seq = Seq(20, k => k switch { 0 => float.NaN, 1 => 0.3f, 2 => 0.2f, 3 => 0.1f, _ => 0.01f });
        var plan = Drive(CachePolicy.Parse("bwcache:delta=0.15,refresh=2"), 20, seq)[0];
        Assert.Equal("CCCC" + "SSCSSCSS" + "FFFFFFFF", plan);
        // refresh as a fraction: 0.1 of 20 steps = 2, the same plan.
        Assert.Equal(plan, Drive(CachePolicy.Parse("bwcache:delta=0.15,refresh=0.1"), 20, seq)[0]);
        // tail = 0: the window runs to the end.
        Assert.Equal("CCCC" + "SSCSSCSSCSSCSSCS", Drive(CachePolicy.Parse("bwcache:delta=0.15,refresh=2,tail=0"), 20, seq)[0]);
    }

    [Fact]
    public void BWCache_with_delta_zero_never_reuses_and_latches_without_recheck()
    {
        var seq = Seq(12, k => k == 0 ? float.NaN : 0.001f);
        Assert.Equal(new string('C', 12), Drive(CachePolicy.Parse("bwcache:delta=0"), 12, seq)[0]);
        // Without recheck a refresh whose indicator is large does not end the window.
        var jump = Seq(20, k => k == 0 ? float.NaN : k == 1 ? 0.05f : 0.9f);
        Assert.Equal("CC" + "SSCSSCSSC" + "FFFFFFFFF", Drive(CachePolicy.Parse("bwcache:refresh=2"), 20, jump)[0]);
        // With recheck it does: the refresh at step 4 reads 0.9 ≥ δ, so the image computes (C) from step 5 on.
        Assert.Equal("CCSSC" + new string('C', 15), Drive(CachePolicy.Parse("bwcache:refresh=2,recheck=true"), 20, jump)[0]);
    }

    [Fact]
    public void BWCache_decides_each_image_from_its_own_indicator()
    {
        var early = Seq(10, k => k == 0 ? float.NaN : 0.01f);
        var never = Seq(10, k => k == 0 ? float.NaN : 0.5f);
        var plans = Drive(CachePolicy.Parse("bwcache:refresh=1"), 10, early, never);
        // early: trigger at step 1, rest 2-9 (8 steps), window 2-5: S C S C, then F.
        Assert.Equal("CCSCSCFFFF", plans[0]);
        Assert.Equal(new string('C', 10), plans[1]);
    }

    [Fact]
    public void TeaCache_accumulates_the_rescaled_change_and_resets_on_compute_with_first_and_last_steps_computed()
    {
        // threshold 0.25, identity: sums 0.1, 0.2 (S S), 0.3 → C (reset); 0.3 → C; 0.05, 0.1 … (S) until ≥ 0.25.
        float[] seq = [float.NaN, 0.1f, 0.1f, 0.1f, 0.3f, 0.05f, 0.05f, 0.05f, 0.05f, 0.05f, 0.05f, 0.01f];
        Assert.Equal("CSSCCSSSSCSF", Drive(CachePolicy.Parse("teacache:threshold=0.25"), 12, seq)[0]);
        Assert.Equal("CCCCCCCCCCCF", Drive(CachePolicy.Parse("teacache:threshold=0"), 12, seq)[0]);
        // A polynomial 2x (coefficients 2, 0): sums 0.2 (S), 0.4 → C, …
        Assert.Equal("CSCSCF", Drive(CachePolicy.Parse("teacache:threshold=0.25,poly=2/0"), 6, [float.NaN, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f])[0]);
    }

    [Fact]
    public void TeaCache_rescale_is_the_polynomial_highest_power_first()
    {
        var p = new TeaCachePolicy(0.1, [3, -2, 0.5]);   // 3x² − 2x + 0.5
        Assert.Equal(3 * 0.04 - 2 * 0.2 + 0.5, p.Rescale(0.2), 12);
        Assert.Equal(0.5, new TeaCachePolicy(0.1, [1, 0]).Rescale(0.5), 12);
    }

    [Fact]
    public void FBCache_reuses_exactly_when_the_change_is_below_the_threshold()
    {
        float[] seq = [float.NaN, 0.01f, 0.2f, 0.079f, 0.081f, 0.0f];
        Assert.Equal("CSCSCS", Drive(CachePolicy.Parse("fbcache:threshold=0.08"), 6, seq)[0]);
        Assert.Equal("CCCCCC", Drive(CachePolicy.Parse("fbcache:threshold=0"), 6, seq)[0]);
    }

    [Theory]
    [InlineData("bwcache:delta=-1", "delta")]
    [InlineData("bwcache:refresh=0", "refresh")]
    [InlineData("bwcache:refresh=2.5", "refresh")]
    [InlineData("bwcache:blocks=3", "blocks=3")]
    [InlineData("bwcache:blocks=5-2", "range")]
    [InlineData("bwcache:recheck=yes", "recheck")]
    [InlineData("bwcache:tail=2", "tail")]
    [InlineData("teacache:threshold=x", "not a number")]
    [InlineData("teacache:poly=1/a", "poly")]
    [InlineData("fbcache:delta=0.1", "unknown parameter 'delta'")]
    public void Bad_adaptive_parameters_are_named(string spec, string why)
    {
        var e = Assert.Throws<PlanException>(() => CachePolicy.Parse(spec));
        Assert.Contains(why, e.Message, StringComparison.Ordinal);
        Assert.Contains(CachePolicy.Syntax, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("bwcache")]
    [InlineData("bwcache:delta=0.2,refresh=3,blocks=2-5,tail=0.25,recheck=true")]
    [InlineData("teacache:threshold=0.3,poly=2/0.5/0")]
    [InlineData("fbcache:threshold=0.05")]
    public void Adaptive_specs_round_trip_and_have_no_plan_ahead_of_the_run(string spec)
    {
        var p = CachePolicy.Parse(spec);
        Assert.True(p.IsDynamic);
        Assert.Equal(p.Spec, CachePolicy.Parse(p.Spec).Spec);
        var e = Assert.Throws<PlanException>(() => p.Plan(50, 12));
        Assert.Contains("run time", e.Message, StringComparison.Ordinal);
        Assert.Equal(0.5, ((AdaptivePolicy)p).WithThreshold(0.5).Threshold);
    }

    [Fact]
    public void BWCache_blocks_outside_the_model_are_rejected_when_the_run_starts()
    {
        var e = Assert.Throws<PlanException>(() => CachePolicy.Parse("bwcache:blocks=2-12").CreateController(50, 12, 1));
        Assert.Contains("0-11", e.Message, StringComparison.Ordinal);
        Assert.Equal([2, 3, 4], CachePolicy.Parse("bwcache:blocks=2-4").CreateController(50, 12, 1).IndicatorBlocks);
    }
}

using BlockDance.Dit.Sampling;
using Xunit;

namespace BlockDance.Tests.Sampling;

public sealed class ScheduleTests
{
    [Fact]
    public void Original_respacing_of_50_steps_uses_the_fractional_stride()
    {
        int[] t = RespacedDiffusion.SpaceTimesteps(1000, 50);
        Assert.Equal(50, t.Length);
        Assert.Equal([0, 20, 41, 61, 82, 102, 122, 143], t[..8]);
        Assert.Equal([938, 958, 979, 999], t[^4..]);
        // Independent computation: round(k·999/49) half-to-even (the accumulated float sum gives the same here).
        Assert.Equal(Enumerable.Range(0, 50).Select(k => (int)Math.Round(k * 999.0 / 49, MidpointRounding.ToEven)), t);
    }

    [Fact]
    public void Respacing_250_steps_matches_sample_py()
    {
        int[] t = RespacedDiffusion.SpaceTimesteps(1000, 250);
        Assert.Equal([0, 4, 8], t[..3]);
        Assert.Equal([991, 995, 999], t[^3..]);
    }

    [Fact]
    public void Respaced_alphas_equal_the_original_at_kept_steps()
    {
        var d = new RespacedDiffusion(50);
        var betas = RespacedDiffusion.LinearBetas(1000);
        double acp = 1;
        var original = new double[1000];
        for (int i = 0; i < 1000; i++)
            original[i] = acp *= 1 - betas[i];
        for (int k = 0; k < 50; k++)
            Assert.Equal(original[d.TimestepMap[k]], d.AlphasCumprod[k], 12);
        Assert.Equal(4.0358e-5, original[999], 8);
        Assert.Equal(0.9999, original[0], 12);
    }

    [Fact]
    public void Leading_spacing_of_50_steps_counts_down_from_980()
    {
        var s = new LeadingDdimSchedule(50);
        Assert.Equal(Enumerable.Range(0, 50).Select(k => 980 - 20 * k), s.Timesteps);
    }

    [Fact]
    public void Deterministic_ddim_coefficients_recover_x0_at_the_last_step()
    {
        var d = new RespacedDiffusion(10);
        var c = d.Ddim(0, eta: 0);
        Assert.Equal(1f, c.C);      // ᾱ_prev = 1 at the last step: x' = x0
        Assert.Equal(0f, c.D);
        Assert.Equal(0f, c.E);
        var mid = d.Ddim(5, eta: 1);
        Assert.True(mid.E > 0);
    }

    [Fact]
    public void Samplers_step_through_timesteps_from_noisy_to_clean()
    {
        var s = Sampler.Create(SamplerKind.Ddim, 50);
        Assert.Equal(999f, s.Timestep(0));
        Assert.Equal(0f, s.Timestep(49));
        Assert.False(s.NeedsNoise(10));
        var a = Sampler.Create(SamplerKind.Ancestral, 20);
        Assert.True(a.NeedsNoise(0));
        Assert.False(a.NeedsNoise(19));
        Assert.Throws<Runtime.InvalidRequestException>(() => Sampler.Parse("euler"));
    }
}

using BlockDance.Kernels;
using BlockDance.Runtime;

namespace BlockDance.Dit.Sampling;

/// <summary>The samplers a <see cref="Dit.Pipeline.GenerationRequest"/> can use.</summary>
public enum SamplerKind
{
    /// <summary>DDIM on the original DiT's fractional-stride respacing (0, 20, 41, …, 999 for 50 steps).</summary>
    Ddim,

    /// <summary>DDIM with diffusers' "leading" spacing (980, 960, …, 0 for 50 steps).</summary>
    DdimLeading,

    /// <summary>The ancestral DDPM sampler with learned variance range of the original <c>sample.py</c>.</summary>
    Ancestral,
}

/// <summary>
/// A sampler walks steps k = 0 … S−1 in sampling order (k = 0 is the noisiest): it names the model timestep of each
/// step and updates the latent from the (guided) model output.
/// </summary>
public abstract class Sampler
{
    /// <summary>Number of sampling steps S.</summary>
    public abstract int Steps { get; }

    /// <summary>Model timestep (original 0..999 scale) at sampling step k.</summary>
    public abstract float Timestep(int k);

    /// <summary>True when step k adds fresh Gaussian noise.</summary>
    public abstract bool NeedsNoise(int k);

    /// <summary>Updates x (n, C, H, W) in place from the model output (n, C' ≥ C, H, W) of step k.</summary>
    public abstract void Step(IOps ops, int k, Tensor x, Tensor modelOutput, Tensor? noise);

    /// <summary>A sampler of <paramref name="kind"/> with <paramref name="steps"/> steps; <paramref name="eta"/> is DDIM's noise scale (0: deterministic) and is ignored by the ancestral sampler.</summary>
    public static Sampler Create(SamplerKind kind, int steps, float eta = 0f) => kind switch
    {
        SamplerKind.Ddim => new DdimSampler(steps, eta),
        SamplerKind.DdimLeading => new LeadingDdimSampler(steps, eta),
        SamplerKind.Ancestral => new AncestralSampler(steps),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>Parses a sampler name as given on the command line.</summary>
    public static SamplerKind Parse(string name) => name.ToLowerInvariant() switch
    {
        "ddim" => SamplerKind.Ddim,
        "ddim-leading" or "ddim_leading" => SamplerKind.DdimLeading,
        "ancestral" or "ddpm" => SamplerKind.Ancestral,
        _ => throw new Runtime.InvalidRequestException($"unknown sampler '{name}': expected ddim, ddim-leading or ancestral", nameof(name)),
    };

    /// <summary>The command-line name of a sampler kind (the inverse of <see cref="Parse"/>).</summary>
    public static string Name(SamplerKind kind) => kind switch
    {
        SamplerKind.Ddim => "ddim",
        SamplerKind.DdimLeading => "ddim-leading",
        _ => "ancestral",
    };
}

/// <summary>DDIM (eta ≥ 0) on the original DiT respacing: <c>gaussian_diffusion.py: ddim_sample</c>.</summary>
public sealed class DdimSampler : Sampler
{
    private readonly RespacedDiffusion _diffusion;
    private readonly DdimCoefficients[] _coefficients;

    /// <summary>DDIM with <paramref name="steps"/> steps and noise scale <paramref name="eta"/> (0: deterministic).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="eta"/> is negative or not finite.</exception>
    public DdimSampler(int steps, float eta)
    {
        if (eta < 0 || !float.IsFinite(eta))
            throw new ArgumentOutOfRangeException(nameof(eta), $"eta must be a finite number ≥ 0, not {eta}");
        _diffusion = new RespacedDiffusion(steps);
        _coefficients = Enumerable.Range(0, steps).Select(k => _diffusion.Ddim(steps - 1 - k, eta)).ToArray();
        CheckFinite(_coefficients, eta);
    }

    /// <inheritdoc/>
    public override int Steps => _diffusion.Steps;
    /// <inheritdoc/>
    public override float Timestep(int k) => _diffusion.TimestepMap[Steps - 1 - k];
    /// <inheritdoc/>
    public override bool NeedsNoise(int k) => _coefficients[k].E != 0;
    /// <inheritdoc/>
    public override void Step(IOps ops, int k, Tensor x, Tensor modelOutput, Tensor? noise) =>
        _coefficients[k].Step(ops, x, modelOutput, noise);

    /// <summary>√(1 − ᾱ_prev − σ²) is NaN when σ is too large (eta above 1): refuse before sampling rather than after.</summary>
    internal static void CheckFinite(DdimCoefficients[] coefficients, float eta)
    {
        for (int k = 0; k < coefficients.Length; k++)
        {
            var c = coefficients[k];
            if (!float.IsFinite(c.D) || !float.IsFinite(c.E))
                throw new ArgumentOutOfRangeException(nameof(eta), $"eta {eta} makes the DDIM update undefined at step {k} (√(1 − ᾱ_prev − σ²) of a negative number); use eta in [0, 1]");
        }
    }
}

/// <summary>DDIM with diffusers' DDIMScheduler and "leading" spacing.</summary>
public sealed class LeadingDdimSampler : Sampler
{
    private readonly LeadingDdimSchedule _schedule;
    private readonly DdimCoefficients[] _coefficients;

    /// <summary>Leading-spacing DDIM with <paramref name="steps"/> steps and noise scale <paramref name="eta"/> (0: deterministic).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="eta"/> is negative or not finite.</exception>
    public LeadingDdimSampler(int steps, float eta)
    {
        if (eta < 0 || !float.IsFinite(eta))
            throw new ArgumentOutOfRangeException(nameof(eta), $"eta must be a finite number ≥ 0, not {eta}");
        _schedule = new LeadingDdimSchedule(steps);
        _coefficients = Enumerable.Range(0, steps).Select(k => _schedule.Ddim(k, eta)).ToArray();
        DdimSampler.CheckFinite(_coefficients, eta);
    }

    /// <inheritdoc/>
    public override int Steps => _schedule.Steps;
    /// <inheritdoc/>
    public override float Timestep(int k) => _schedule.Timesteps[k];
    /// <inheritdoc/>
    public override bool NeedsNoise(int k) => _coefficients[k].E != 0;
    /// <inheritdoc/>
    public override void Step(IOps ops, int k, Tensor x, Tensor modelOutput, Tensor? noise) =>
        _coefficients[k].Step(ops, x, modelOutput, noise);
}

/// <summary>Ancestral sampling with a learned variance range: <c>gaussian_diffusion.py: p_sample</c>; needs learned sigma.</summary>
public sealed class AncestralSampler : Sampler
{
    private readonly RespacedDiffusion _diffusion;
    private readonly AncestralCoefficients[] _coefficients;

    /// <summary>The ancestral sampler with <paramref name="steps"/> steps.</summary>
    public AncestralSampler(int steps)
    {
        _diffusion = new RespacedDiffusion(steps);
        _coefficients = Enumerable.Range(0, steps).Select(k => _diffusion.Ancestral(steps - 1 - k)).ToArray();
    }

    /// <inheritdoc/>
    public override int Steps => _diffusion.Steps;
    /// <inheritdoc/>
    public override float Timestep(int k) => _diffusion.TimestepMap[Steps - 1 - k];
    /// <inheritdoc/>
    public override bool NeedsNoise(int k) => _coefficients[k].Nonzero != 0;
    /// <inheritdoc/>
    public override void Step(IOps ops, int k, Tensor x, Tensor modelOutput, Tensor? noise) =>
        _coefficients[k].Step(ops, x, modelOutput, noise);
}

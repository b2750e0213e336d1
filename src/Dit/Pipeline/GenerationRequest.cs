using BlockDance.Dit.Caching;
using BlockDance.Dit.Sampling;
using BlockDance.Kernels;
using BlockDance.Runtime;

namespace BlockDance.Dit.Pipeline;

/// <summary>Everything that determines a generation; the same request always gives the same bytes.</summary>
public sealed record GenerationRequest
{
    /// <summary>One class label per image; <c>num_classes</c> (the null class) generates unconditionally.</summary>
    public required IReadOnlyList<int> Labels { get; init; }

    /// <summary>Sampling steps (50 by default).</summary>
    public int Steps { get; init; } = 50;

    /// <summary>The sampler: DDIM on the original DiT's respacing (default), DDIM with diffusers' leading spacing, or
    /// the original ancestral sampler (needs a model with learned sigma).</summary>
    public SamplerKind Sampler { get; init; } = SamplerKind.Ddim;

    /// <summary>DDIM eta in [0, 1]: 0 is deterministic (default), 1 DDPM-like.</summary>
    public float Eta { get; init; }

    /// <summary>Classifier-free guidance scale; values ≤ 1 run the conditional model alone.</summary>
    public float GuidanceScale { get; init; } = 4f;

    /// <summary>Channels guidance applies to; null takes the model's numerics (original DiT 3, diffusers 4).</summary>
    public int? GuidedChannels { get; init; }

    /// <summary>Seed of all the noise (Philox): the same seed gives the same bytes on the same device.</summary>
    public ulong Seed { get; init; }

    /// <summary>Latent height and width; null takes the model's input size.</summary>
    public int? LatentSize { get; init; }

    /// <summary>The feature-cache policy (<see cref="CachePolicy.Parse"/>); <see cref="CachePolicy.None"/> by default.</summary>
    public CachePolicy Cache { get; init; } = CachePolicy.None;

    /// <summary>Starting noise (n, C, H, W) as float32; null draws it from <see cref="Seed"/>.</summary>
    public float[]? InitialNoise { get; init; }

    /// <summary>Noise of the stochastic steps; null draws it from <see cref="Seed"/>.</summary>
    public IStepNoise? StepNoise { get; init; }

    /// <summary>True when <see cref="GuidanceScale"/> &gt; 1: the model runs the batch [cond…, uncond…].</summary>
    public bool UsesGuidance => GuidanceScale > 1f;
}

/// <summary>Supplies the fresh Gaussian noise of sampling step k.</summary>
public interface IStepNoise
{
    /// <summary>Fills <paramref name="noise"/> (n, C, H, W) with step <paramref name="step"/>'s standard normal noise.</summary>
    void Fill(IOps ops, int step, Tensor noise);
}

/// <summary>
/// The default noise: Philox normals from the run's seed. The starting latent takes indices <c>[0, count)</c> and step k
/// takes <c>[(k+1)·count, (k+2)·count)</c> of the stream, so every step's noise is independent and reproducible.
/// </summary>
public sealed class PhiloxStepNoise(ulong seed) : IStepNoise
{
    /// <inheritdoc/>
    public void Fill(IOps ops, int step, Tensor noise) => ops.RandomNormal(noise, seed, (ulong)(step + 1) * (ulong)noise.Count);
}

/// <summary>
/// Noise given up front, one block of <c>noise.Count</c> values per step (a dump's <c>sample.step_noise</c>), for parity
/// with a run whose noise came from another generator. Uploads on every step: for comparisons, not for speed.
/// </summary>
public sealed class RecordedStepNoise(float[] all) : IStepNoise
{
    /// <inheritdoc/>
    public void Fill(IOps ops, int step, Tensor noise)
    {
        long start = step * noise.Count;
        if (start + noise.Count > all.Length)
            throw new ArgumentException($"recorded noise has {all.Length} values; step {step} needs [{start}, {start + noise.Count})");
        using var tmp = ops.Device.FromFloats(all.AsSpan(checked((int)start), (int)noise.Count), noise.DType, noise.Shape.ToArray());
        ops.Device.Copy(tmp, noise);
    }
}

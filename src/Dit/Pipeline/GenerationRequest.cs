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

    /// <summary>Number of sampling steps (default 50).</summary>
    public int Steps { get; init; } = 50;
    /// <summary>The sampler (default DDIM on the original DiT respacing).</summary>
    public SamplerKind Sampler { get; init; } = SamplerKind.Ddim;
    /// <summary>DDIM's noise scale: 0 (the default) is deterministic DDIM, 1 is DDPM-like; ignored by the ancestral sampler.</summary>
    public float Eta { get; init; }

    /// <summary>Classifier-free guidance scale; values ≤ 1 run the conditional model alone.</summary>
    public float GuidanceScale { get; init; } = 4f;

    /// <summary>Channels guidance applies to; null takes the model's numerics (original DiT 3, diffusers 4).</summary>
    public int? GuidedChannels { get; init; }

    /// <summary>Seed of the starting noise and of the step noise (Philox): the same seed gives the same bytes.</summary>
    public ulong Seed { get; init; }

    /// <summary>Latent height and width; null takes the model's input size.</summary>
    public int? LatentSize { get; init; }

    /// <summary>The feature-cache policy (default: none, every step runs every block), e.g. <c>CachePolicy.Parse("blockdance:n=2")</c>.</summary>
    public CachePolicy Cache { get; init; } = CachePolicy.None;

    /// <summary>Starting noise (n, C, H, W) as float32; null draws it from <see cref="Seed"/>.</summary>
    public float[]? InitialNoise { get; init; }

    /// <summary>Noise of the stochastic steps; null draws it from <see cref="Seed"/>.</summary>
    public IStepNoise? StepNoise { get; init; }

    /// <summary>True when <see cref="GuidanceScale"/> is above 1, so each image runs a conditional and an unconditional item.</summary>
    public bool UsesGuidance => GuidanceScale > 1f;
}

/// <summary>Supplies the fresh Gaussian noise of sampling step k.</summary>
public interface IStepNoise
{
    /// <summary>Writes the noise of sampling step <paramref name="step"/> into <paramref name="noise"/> (n, C, H, W) on <paramref name="ops"/>' device.</summary>
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

/// <summary>Called after every sampling step (progress bars, analysis). Implementations should not allocate per call.</summary>
public interface IStepObserver
{
    /// <summary>Called after step <paramref name="step"/> of <paramref name="steps"/> ran as <paramref name="kind"/>, taking <paramref name="milliseconds"/>.</summary>
    void OnStep(int step, int steps, StepKind kind, double milliseconds);
}

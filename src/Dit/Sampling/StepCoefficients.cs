using BlockDance.Kernels;
using BlockDance.Runtime;

namespace BlockDance.Dit.Sampling;

/// <summary>
/// Per-step scalars of a DDIM update (float32, gathered from float64 schedules exactly as the references do), applied
/// by <see cref="IOps.DdimStep"/>. With <see cref="RederiveEps"/> (original DiT, <c>gaussian_diffusion.py: ddim_sample</c>):
/// <c>x0 = A·x − B·ε; ε' = (A·x − x0)/B; x' = x0·C + D·ε' + E·noise</c>.
/// Without it (diffusers <c>DDIMScheduler.step</c>): <c>x0 = (x − B·ε)/A; x' = C·x0 + D·ε + E·noise</c> where here
/// A = √ᾱ and B = √(1−ᾱ).
/// </summary>
public readonly record struct DdimCoefficients(float A, float B, float C, float D, float E, bool RederiveEps)
{
    /// <summary>Updates <paramref name="x"/> in place with these scalars (<see cref="IOps.DdimStep"/>).</summary>
    public void Step(IOps ops, Tensor x, Tensor modelOutput, Tensor? noise) =>
        ops.DdimStep(x, modelOutput, A, B, C, D, E, RederiveEps, noise);
}

/// <summary>
/// Per-step scalars of the ancestral (DDPM) update with a learned variance range (original DiT <c>p_sample</c>), applied
/// by <see cref="IOps.AncestralStep"/>:
/// <c>x0 = A·x − B·ε; mean = C1·x0 + C2·x; f = (v+1)/2; logσ² = f·MaxLog + (1−f)·MinLog; x' = mean + Nonzero·exp(½logσ²)·noise</c>.
/// </summary>
public readonly record struct AncestralCoefficients(float A, float B, float C1, float C2, float MinLog, float MaxLog, float Nonzero)
{
    /// <summary>Updates <paramref name="x"/> in place with these scalars (<see cref="IOps.AncestralStep"/>).</summary>
    public void Step(IOps ops, Tensor x, Tensor modelOutput, Tensor? noise) =>
        ops.AncestralStep(x, modelOutput, A, B, C1, C2, MinLog, MaxLog, Nonzero, noise);
}

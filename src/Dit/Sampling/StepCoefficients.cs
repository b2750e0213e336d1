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
/// <param name="A">Scale of x in x0 (original: √(1/ᾱ); diffusers: √ᾱ, a divisor).</param>
/// <param name="B">Scale of ε in x0 (original: √(1/ᾱ − 1); diffusers: √(1−ᾱ)).</param>
/// <param name="C">Scale of x0 in x' (√ᾱ_prev).</param>
/// <param name="D">Scale of the direction ε in x' (√(1 − ᾱ_prev − σ²)).</param>
/// <param name="E">Scale of the noise (σ; 0 for deterministic DDIM).</param>
/// <param name="RederiveEps">Original DiT's ε re-derivation from the clipped x0.</param>
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
/// <param name="A">Scale of x in x0 (√(1/ᾱ)).</param>
/// <param name="B">Scale of ε in x0 (√(1/ᾱ − 1)).</param>
/// <param name="C1">Posterior mean coefficient of x0.</param>
/// <param name="C2">Posterior mean coefficient of x.</param>
/// <param name="MinLog">Clipped log posterior variance (f = 0).</param>
/// <param name="MaxLog">log β (f = 1).</param>
/// <param name="Nonzero">1, or 0 at the last step (no noise).</param>
public readonly record struct AncestralCoefficients(float A, float B, float C1, float C2, float MinLog, float MaxLog, float Nonzero)
{
    /// <summary>Updates <paramref name="x"/> in place with these scalars (<see cref="IOps.AncestralStep"/>).</summary>
    public void Step(IOps ops, Tensor x, Tensor modelOutput, Tensor? noise) =>
        ops.AncestralStep(x, modelOutput, A, B, C1, C2, MinLog, MaxLog, Nonzero, noise);
}

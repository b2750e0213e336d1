using BlockDance.Dit.Caching;

namespace BlockDance.Dit.Pipeline;

/// <summary>
/// Reported by <see cref="DitPipeline.Generate"/> after every sampling step, on the generating thread.
/// </summary>
/// <param name="Step">The step just finished, 0 … <paramref name="Steps"/> − 1 (0 is the noisiest).</param>
/// <param name="Steps">Steps of the run.</param>
/// <param name="Kind">What the step did: a full forward, a forward that cached features, or one that reused them.</param>
/// <param name="Milliseconds">The step's wall time.</param>
public readonly record struct GenerationProgress(int Step, int Steps, StepKind Kind, double Milliseconds);

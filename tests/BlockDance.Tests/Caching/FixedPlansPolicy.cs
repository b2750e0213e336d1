using BlockDance.Dit.Caching;

namespace BlockDance.Tests.Caching;

/// <summary>
/// A dynamic policy whose controller gives batch item i (an image, or a clip of a video model) the fixed plan
/// <c>plans[i]</c>, letters F, C, R and S, as a learned policy would: per-item execution can then be compared with each
/// item run alone on the same letters as a static plan (<see cref="Static"/>).
/// </summary>
internal sealed class FixedPlansPolicy(string[] plans, int boundary) : CachePolicy
{
    public override string Spec => "fixed-plans:" + string.Join('/', plans);
    public override bool IsDynamic => true;
    public override StepPlan Plan(int steps, int depth) => throw new PlanException("fixed plans per item: decided at run time");
    public override StepController CreateController(int steps, int depth, int images) => new Controller(plans, boundary, steps, depth, images);

    /// <summary>The step kind a plan letter stands for.</summary>
    public static StepKind Kind(char c) => c switch { 'C' => StepKind.Cache, 'R' => StepKind.Reuse, 'S' => StepKind.Skip, _ => StepKind.Full };

    /// <summary>The same letters as a static plan of a <paramref name="depth"/>-block model.</summary>
    public static StepPlan Static(string letters, int boundary, int depth) => new(letters.Select(Kind).ToArray(), boundary, depth);

    private sealed class Controller(string[] plans, int boundary, int steps, int depth, int images) : StepController(steps, depth, images)
    {
        public override int Boundary => boundary;
        public override void Decide(int step, ReadOnlySpan<float> probe, Span<StepKind> kinds)
        {
            for (int i = 0; i < kinds.Length; i++)
                kinds[i] = Kind(plans[i][step]);
        }
    }
}

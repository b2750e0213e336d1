namespace BlockDance.Dit.Caching;

/// <summary>What a sampling run measures for a <see cref="StepController"/> (with the device op <c>IOps.RelativeL1</c>).</summary>
public enum CacheIndicator
{
    /// <summary>Nothing: the controller decides from the step index alone (static plans).</summary>
    None,

    /// <summary>
    /// BWCache: on every computed step, for each block of <see cref="StepController.IndicatorBlocks"/>, the relative L1
    /// distance of the block's output to its output at the image's previous computed step, averaged over those blocks.
    /// Measured after the step (reported to <see cref="StepController.Observe"/>); NaN at an image's first computed step.
    /// </summary>
    BlockOutputs,

    /// <summary>
    /// TeaCache: on every step, before the decision, the relative L1 distance of block 0's modulated input
    /// <c>LN(x)·(1 + scale_msa) + shift_msa</c> to the previous step's (NaN at step 0). Passed to <see cref="StepController.Decide"/>.
    /// </summary>
    ModulatedInput,

    /// <summary>
    /// First-Block-Cache: on every step, before the decision, blocks <c>0 … SkipFrom−1</c> run and the relative L1
    /// distance of their residual (output − input) to the residual of the image's last computed step is measured (NaN
    /// before the first computed step). Passed to <see cref="StepController.Decide"/>.
    /// </summary>
    HeadResidual,
}

/// <summary>
/// Decides, step by step and image by image, what each step does, from what the run has observed so far. A
/// <see cref="CachePolicy"/> creates one per run (<see cref="CachePolicy.CreateController(int, int, int, int)"/>), so no state crosses runs.
/// A static plan is the controller that ignores its observations; BWCache, TeaCache and First-Block-Cache read an
/// indicator; a learned policy (BlockDance-Ada, <see cref="AdaPolicy"/>) reads the latent in <see cref="Observe"/> at its
/// step ρ·S − 1 and then returns each image's kinds (Cache or Reuse) for the remaining steps. A controller that holds
/// device memory implements <see cref="IDisposable"/>; the run disposes it with itself. With guidance the run combines the conditional and unconditional halves of an image into one
/// indicator value (their maximum: reuse only when both halves agree), so every decision is one per image.
/// </summary>
public abstract class StepController
{
    /// <summary>A controller for a run of <paramref name="steps"/> steps, a model of <paramref name="depth"/> blocks and <paramref name="images"/> images.</summary>
    protected StepController(int steps, int depth, int images)
    {
        if (steps < 1)
            throw new PlanException($"steps must be positive, not {steps}");
        if (depth < 1)
            throw new PlanException($"depth must be positive, not {depth}");
        if (images < 1)
            throw new PlanException($"a run needs at least one image, not {images}");
        Steps = steps;
        Depth = depth;
        Images = images;
    }

    /// <summary>Sampling steps of the run.</summary>
    public int Steps { get; }

    /// <summary>Blocks of the model.</summary>
    public int Depth { get; }

    /// <summary>Images of the run (one decision per image and step).</summary>
    public int Images { get; }

    /// <summary>What the run measures for this controller.</summary>
    public virtual CacheIndicator Indicator => CacheIndicator.None;

    /// <summary>The blocks whose outputs <see cref="CacheIndicator.BlockOutputs"/> compares (ascending, distinct).</summary>
    public virtual IReadOnlyList<int> IndicatorBlocks => [];

    /// <summary>The boundary of <see cref="StepKind.Reuse"/> steps (0 when the controller never reuses at a boundary).</summary>
    public virtual int Boundary => 0;

    /// <summary>First block a <see cref="StepKind.Skip"/> step skips.</summary>
    public virtual int SkipFrom => 0;

    /// <summary>A Skip step adds the stored residual of the skipped blocks (true) or reuses their stored output verbatim (false).</summary>
    public virtual bool SkipAddsResidual => false;

    /// <summary>
    /// True when every image gets the same kinds whatever was observed (a static plan): the run then follows the plan
    /// for the whole batch on its original code path.
    /// </summary>
    public virtual bool IsStatic => false;

    /// <summary>
    /// Decides step <paramref name="step"/>: writes one kind per image into <paramref name="kinds"/>.
    /// <paramref name="probe"/> holds this step's pre-decision indicator per image (<see cref="CacheIndicator.ModulatedInput"/>,
    /// <see cref="CacheIndicator.HeadResidual"/>; NaN where there is none yet, empty for the other indicators).
    /// The images of one step may have different kinds, except that <see cref="StepKind.Reuse"/> and
    /// <see cref="StepKind.Skip"/> do not mix in one step, and an image reuses only after a Cache step of its own.
    /// </summary>
    public abstract void Decide(int step, ReadOnlySpan<float> probe, Span<StepKind> kinds);

    /// <summary>
    /// Called once by the run before its first step (under the device's step lock), with what a controller that runs a
    /// network of its own needs: the run's ops, the images' class labels (one per image, the conditional ones) and the
    /// latent's shape. Throws <see cref="Runtime.InvalidRequestException"/> when the run does not fit the controller.
    /// </summary>
    /// <param name="ops">The backend of the run's model; the run's latent lives on its device.</param>
    /// <param name="labels">Each image's (clip's) class label.</param>
    /// <param name="channels">Latent channels C (per frame).</param>
    /// <param name="size">Latent height and width.</param>
    /// <param name="frames">Frames per sample F: 1 for an image model; the latent is (n·F, C, H, W).</param>
    public virtual void Begin(Kernels.IOps ops, IReadOnlyList<int> labels, int channels, int size, int frames)
    {
    }

    /// <summary>
    /// Called after each step with the kinds executed and, for <see cref="CacheIndicator.BlockOutputs"/>, the indicator
    /// measured on each image's computed blocks (NaN where not measured).
    /// </summary>
    public virtual void Observe(in StepObservation observation)
    {
    }
}

/// <summary>What a run reports to its controller after a step.</summary>
/// <param name="Step">The step that ran.</param>
/// <param name="Kinds">The kind each image executed.</param>
/// <param name="Indicator">Per image, the post-step indicator (NaN where not measured).</param>
/// <param name="Latent">The sampler's latent after the step, (n·F, C, H, W) on the model's device (F = 1 for images); valid only during the call.</param>
public readonly ref struct StepObservation(int Step, ReadOnlySpan<StepKind> Kinds, ReadOnlySpan<float> Indicator, Runtime.Tensor Latent)
{
    /// <summary>The step that ran.</summary>
    public int Step { get; } = Step;

    /// <summary>The kind each image executed.</summary>
    public ReadOnlySpan<StepKind> Kinds { get; } = Kinds;

    /// <summary>Per image, the post-step indicator (NaN where not measured).</summary>
    public ReadOnlySpan<float> Indicator { get; } = Indicator;

    /// <summary>The sampler's latent after the step, (n·F, C, H, W) on the model's device (F = 1 for images); valid only during the call.</summary>
    public Runtime.Tensor Latent { get; } = Latent;
}

/// <summary>A static plan as a controller: every image follows the plan; observations are ignored.</summary>
public sealed class PlanController(StepPlan plan, int images) : StepController(plan.Steps, plan.Depth, images)
{
    /// <summary>The plan followed.</summary>
    public StepPlan Plan { get; } = plan;

    /// <inheritdoc/>
    public override int Boundary => Plan.Boundary;

    /// <inheritdoc/>
    public override bool IsStatic => true;

    /// <inheritdoc/>
    public override void Decide(int step, ReadOnlySpan<float> probe, Span<StepKind> kinds) => kinds.Fill(Plan[step]);
}

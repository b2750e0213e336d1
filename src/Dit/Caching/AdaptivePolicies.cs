using System.Globalization;

namespace BlockDance.Dit.Caching;

/// <summary>
/// A policy that decides at run time from an indicator the run measures (BWCache, TeaCache, First-Block-Cache). It has
/// no plan ahead of the run: <see cref="Plan"/> throws, and the run report keeps the plan that was executed.
/// </summary>
public abstract class AdaptivePolicy : CachePolicy
{
    /// <inheritdoc/>
    public override bool IsDynamic => true;

    /// <summary>The policy's threshold (δ for BWCache), the knob <c>blockdance calibrate</c> searches.</summary>
    public abstract double Threshold { get; }

    /// <summary>The same policy with another threshold.</summary>
    public abstract AdaptivePolicy WithThreshold(double threshold);

    /// <summary>Always throws: an adaptive policy decides each step at run time.</summary>
    public override StepPlan Plan(int steps, int depth) =>
        throw new PlanException($"{Spec} decides each step at run time from what the run measures; it has no plan ahead of the run " +
            "(the run report shows the plan it executed)");

    private protected static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}

/// <summary>
/// BWCache (Cui et al., arXiv 2509.13789) as documented in docs/caching.md. On each computed step the run measures,
/// for every chosen block, the relative L1 distance of its output to the image's previous computed step's, averaged
/// over the blocks. Once that falls below δ at step k, the image reuses the stored output of the last block verbatim
/// (a <see cref="StepKind.Skip"/> of the whole stack) for the first <c>(1 − tail)</c> of the remaining steps, with a
/// computed refresh after every R reused steps; every step before the trigger and the rest after the window is computed.
/// With <see cref="Recheck"/> a refresh whose indicator is not below δ ends the window (the image computes until it
/// falls below δ again, which opens a new window over the then remaining steps).
/// </summary>
public sealed class BwCachePolicy : AdaptivePolicy
{
    /// <summary>A BWCache policy; see the class summary for the parameters' meaning.</summary>
    /// <param name="delta">δ: reuse starts once the indicator is below it (0 disables reuse).</param>
    /// <param name="refresh">R as a fraction of the steps (below 1) or a number of steps (1 or more).</param>
    /// <param name="firstBlock">First block of the indicator (inclusive); null with <paramref name="lastBlock"/> null for all.</param>
    /// <param name="lastBlock">Last block of the indicator (inclusive).</param>
    /// <param name="tail">Fraction of the steps after the trigger that are always computed (the paper: the second half, 0.5).</param>
    /// <param name="recheck">Whether a refresh's indicator can end the reuse window.</param>
    public BwCachePolicy(double delta = 0.15, double refresh = 0.1, int? firstBlock = null, int? lastBlock = null, double tail = 0.5, bool recheck = false)
    {
        if (!(delta >= 0) || double.IsInfinity(delta))
            throw new PlanException($"bwcache: delta {delta} must be a finite number ≥ 0");
        if (!(refresh > 0) || (refresh >= 1 && refresh != Math.Floor(refresh)))
            throw new PlanException($"bwcache: refresh {refresh} must be a fraction of the steps in (0, 1) or a whole number of steps");
        if (!(tail >= 0 && tail <= 1))
            throw new PlanException($"bwcache: tail {tail} must be a fraction in [0, 1]");
        if (firstBlock is int a && lastBlock is int b && (a < 0 || b < a))
            throw new PlanException($"bwcache: blocks {a}-{b} is not a range A-B with 0 ≤ A ≤ B");
        Delta = delta;
        Refresh = refresh;
        FirstBlock = firstBlock;
        LastBlock = lastBlock;
        Tail = tail;
        Recheck = recheck;
    }

    /// <summary>δ.</summary>
    public double Delta { get; }

    /// <summary>R: a fraction of the steps (below 1) or a number of steps.</summary>
    public double Refresh { get; }

    /// <summary>First block of the indicator, null for all blocks.</summary>
    public int? FirstBlock { get; }

    /// <summary>Last block of the indicator, null for all blocks.</summary>
    public int? LastBlock { get; }

    /// <summary>Fraction of the steps after the trigger that are always computed.</summary>
    public double Tail { get; }

    /// <summary>Whether a refresh's indicator can end the reuse window.</summary>
    public bool Recheck { get; }

    /// <inheritdoc/>
    public override double Threshold => Delta;

    /// <inheritdoc/>
    public override AdaptivePolicy WithThreshold(double threshold) => new BwCachePolicy(threshold, Refresh, FirstBlock, LastBlock, Tail, Recheck);

    /// <summary>Reused steps between two refreshes for a run of <paramref name="steps"/> steps (at least 1).</summary>
    public int RefreshInterval(int steps) => Refresh >= 1 ? (int)Refresh : Math.Max(1, (int)Math.Round(Refresh * steps, MidpointRounding.AwayFromZero));

    /// <inheritdoc/>
    public override string Spec =>
        $"bwcache:delta={F(Delta)},refresh={F(Refresh)},blocks={(FirstBlock is int a ? $"{a}-{LastBlock}" : "all")},tail={F(Tail)},recheck={(Recheck ? "true" : "false")}";

    /// <inheritdoc/>
    public override StepController CreateController(int steps, int depth, int images)
    {
        int first = FirstBlock ?? 0, last = LastBlock ?? depth - 1;
        if (last >= depth)
            throw new PlanException($"bwcache: blocks {first}-{last} is outside the model's blocks 0-{depth - 1}");
        return new Controller(this, steps, depth, images, Enumerable.Range(first, last - first + 1).ToArray());
    }

    private sealed class Controller(BwCachePolicy p, int steps, int depth, int images, int[] blocks) : StepController(steps, depth, images)
    {
        private readonly int _interval = p.RefreshInterval(steps);
        private readonly bool[] _open = new bool[images];       // inside a reuse window
        private readonly int[] _windowEnd = new int[images];    // last step of the window
        private readonly int[] _reused = new int[images];       // reused steps since the last computed one

        public override CacheIndicator Indicator => CacheIndicator.BlockOutputs;
        public override IReadOnlyList<int> IndicatorBlocks => blocks;

        public override void Decide(int step, ReadOnlySpan<float> probe, Span<StepKind> kinds)
        {
            for (int i = 0; i < kinds.Length; i++)
            {
                if (_open[i] && step > _windowEnd[i])
                    _open[i] = false;   // the window is over; the rest (or until a new trigger) is computed
                if (!_open[i])
                    kinds[i] = _windowEnd[i] > 0 && !p.Recheck ? StepKind.Full : StepKind.Cache;
                else if (_reused[i] < _interval)
                {
                    kinds[i] = StepKind.Skip;
                    _reused[i]++;
                }
                else
                {
                    kinds[i] = StepKind.Cache;   // the refresh
                    _reused[i] = 0;
                }
            }
        }

        public override void Observe(in StepObservation o)
        {
            for (int i = 0; i < o.Kinds.Length; i++)
            {
                if (o.Kinds[i] != StepKind.Cache || float.IsNaN(o.Indicator[i]))
                    continue;
                bool below = o.Indicator[i] < p.Delta;
                if (!_open[i] && below && (_windowEnd[i] == 0 || p.Recheck))
                {
                    int remaining = Steps - 1 - o.Step;
                    _open[i] = true;
                    _windowEnd[i] = o.Step + (int)Math.Floor(remaining * (1 - p.Tail) + 1e-9);
                    _reused[i] = 0;
                    if (_windowEnd[i] == o.Step)
                        _open[i] = false;   // nothing left to reuse
                }
                else if (_open[i] && !below && p.Recheck)
                {
                    _open[i] = false;
                }
            }
        }
    }
}

/// <summary>
/// TeaCache (Liu et al., ali-vilab/TeaCache): on every step the run measures the relative L1 distance of block 0's
/// modulated input to the previous step's; the policy adds <c>poly(distance)</c> to a per-image sum and, while the sum
/// stays below the threshold, the step adds the stored residual of the whole stack (stack output − stack input of the
/// last computed step) to this step's embedded input. A computed step resets the sum. The first and the last step are
/// always computed. <see cref="Coefficients"/> are the rescaling polynomial, highest power first (TeaCache's
/// <c>np.poly1d</c> order); the default is the identity (no rescaling), see docs/caching.md.
/// </summary>
public sealed class TeaCachePolicy : AdaptivePolicy
{
    /// <summary>A TeaCache policy with <paramref name="threshold"/> (0 disables reuse) and rescaling <paramref name="coefficients"/> (null: identity).</summary>
    public TeaCachePolicy(double threshold = 0.1, IReadOnlyList<double>? coefficients = null)
    {
        if (!(threshold >= 0) || double.IsInfinity(threshold))
            throw new PlanException($"teacache: threshold {threshold} must be a finite number ≥ 0");
        _coefficients = coefficients is { Count: > 0 } c ? c.ToArray() : [1.0, 0.0];
        if (_coefficients.Any(v => !double.IsFinite(v)))
            throw new PlanException("teacache: the coefficients must be finite numbers");
        ThresholdValue = threshold;
    }

    private double ThresholdValue { get; }

    private readonly double[] _coefficients;

    /// <summary>The rescaling polynomial, highest power first.</summary>
    public IReadOnlyList<double> Coefficients => _coefficients;

    /// <inheritdoc/>
    public override double Threshold => ThresholdValue;

    /// <inheritdoc/>
    public override AdaptivePolicy WithThreshold(double threshold) => new TeaCachePolicy(threshold, Coefficients);

    /// <summary><c>poly(x)</c> by Horner's rule.</summary>
    public double Rescale(double x)
    {
        double y = 0;
        foreach (double c in _coefficients)   // the array, not the interface: no enumerator per step
            y = y * x + c;
        return y;
    }

    /// <inheritdoc/>
    public override string Spec => $"teacache:threshold={F(Threshold)}" +
        (_coefficients is [1.0, 0.0] ? "" : ",poly=" + string.Join('/', _coefficients.Select(F)));

    /// <inheritdoc/>
    public override StepController CreateController(int steps, int depth, int images) => new Controller(this, steps, depth, images);

    private sealed class Controller(TeaCachePolicy p, int steps, int depth, int images) : StepController(steps, depth, images)
    {
        private readonly double[] _sum = new double[images];

        public override CacheIndicator Indicator => CacheIndicator.ModulatedInput;
        public override bool SkipAddsResidual => true;

        public override void Decide(int step, ReadOnlySpan<float> probe, Span<StepKind> kinds)
        {
            for (int i = 0; i < kinds.Length; i++)
            {
                if (step == 0 || step == Steps - 1 || float.IsNaN(probe[i]))
                {
                    kinds[i] = step == Steps - 1 ? StepKind.Full : StepKind.Cache;
                    _sum[i] = 0;
                    continue;
                }
                _sum[i] += p.Rescale(probe[i]);
                if (_sum[i] < p.Threshold)
                {
                    kinds[i] = StepKind.Skip;
                }
                else
                {
                    kinds[i] = StepKind.Cache;
                    _sum[i] = 0;
                }
            }
        }
    }
}

/// <summary>
/// First-Block-Cache (ParaAttention, diffusers <c>FirstBlockCacheConfig</c>): on every step block 0 runs, and the run
/// measures the relative L1 distance of its residual (output − input) to the residual of the image's last computed
/// step. Below the threshold the step adds the stored residual of blocks 1 … depth−1 (their output − input at the last
/// computed step) to block 0's output; otherwise it computes them and stores both residuals.
/// </summary>
public sealed class FbCachePolicy : AdaptivePolicy
{
    /// <summary>A First-Block-Cache policy with <paramref name="threshold"/> (0 disables reuse).</summary>
    public FbCachePolicy(double threshold = 0.08)
    {
        if (!(threshold >= 0) || double.IsInfinity(threshold))
            throw new PlanException($"fbcache: threshold {threshold} must be a finite number ≥ 0");
        ThresholdValue = threshold;
    }

    private double ThresholdValue { get; }

    /// <inheritdoc/>
    public override double Threshold => ThresholdValue;

    /// <inheritdoc/>
    public override AdaptivePolicy WithThreshold(double threshold) => new FbCachePolicy(threshold);

    /// <inheritdoc/>
    public override string Spec => $"fbcache:threshold={F(Threshold)}";

    /// <inheritdoc/>
    public override StepController CreateController(int steps, int depth, int images)
    {
        if (depth < 2)
            throw new PlanException("fbcache needs a model of at least 2 blocks (block 0 decides for the rest)");
        return new Controller(this, steps, depth, images);
    }

    private sealed class Controller(FbCachePolicy p, int steps, int depth, int images) : StepController(steps, depth, images)
    {
        public override CacheIndicator Indicator => CacheIndicator.HeadResidual;
        public override int SkipFrom => 1;
        public override bool SkipAddsResidual => true;

        public override void Decide(int step, ReadOnlySpan<float> probe, Span<StepKind> kinds)
        {
            for (int i = 0; i < kinds.Length; i++)
                kinds[i] = !float.IsNaN(probe[i]) && probe[i] < p.Threshold ? StepKind.Skip : StepKind.Cache;
        }
    }
}

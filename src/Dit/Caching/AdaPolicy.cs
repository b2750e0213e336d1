using System.Globalization;
using BlockDance.Dit.Pipeline;
using BlockDance.Kernels;
using BlockDance.Runtime;

namespace BlockDance.Dit.Caching;

/// <summary>
/// BlockDance-Ada (paper §3.4): a learned, per-image plan. Steps 0 … ρ·S−2 are Full and step ρ·S−1 is Cache for every
/// image; right after step ρ·S−1 the decision network (<see cref="AdaDecisionNet"/>) reads each image's latent and
/// class label and gives the probability that each remaining step is a Cache step; the greedy rule
/// (<see cref="AdaDecisionNet.GreedyPlan"/>: Cache when p ≥ threshold or after max_reuse Reuse steps in a row, else
/// Reuse) fixes each image's kinds for the rest of the run. Reuse steps recompute blocks boundary … depth−1 from the
/// image's own stored feature (the network's <c>boundary</c>); images with different plans share each step's batch
/// (<see cref="AdaptiveExecutor"/>). With guidance both halves of an image follow the image's plan. Command-line form:
/// <c>ada[:weights=FILE,rho=0.4,threshold=0.5,maxreuse=N]</c>; the weights default to the bundled
/// <c>models/ada-dit-shapes-32.safetensors</c> for an image model and <c>models/ada-latte-shapes-video-32.safetensors</c>
/// for a video model, threshold and maxreuse to the network's metadata, and rho, when given, must be the network's
/// <c>rho_steps / steps</c>. On a video model the items are clips: a video network (metadata <c>num_frames</c> F) reads
/// each clip's latent with its frames stacked as channels and plans the clip; its F must be the model's.
/// </summary>
public sealed class AdaPolicy : CachePolicy
{
    /// <summary>The file name of the bundled decision network (for the bundled image model), under <c>models/</c>.</summary>
    public const string BundledWeights = "ada-dit-shapes-32.safetensors";

    /// <summary>The file name of the bundled decision network for the bundled video model, under <c>models/</c>.</summary>
    public const string BundledVideoWeights = "ada-latte-shapes-video-32.safetensors";

    /// <summary>A policy; null parameters take the bundled network and the network's metadata.</summary>
    public AdaPolicy(string? weights = null, double? rho = null, double? threshold = null, int? maxReuse = null)
    {
        if (rho is double r && !(r > 0 && r < 1))
            throw new PlanException($"ada: rho {r} must lie in (0, 1)");
        if (threshold is double t && !(t >= 0 && t <= 1))
            throw new PlanException($"ada: threshold {t} must lie in [0, 1]");
        if (maxReuse is < 0)
            throw new PlanException($"ada: maxreuse {maxReuse} must be ≥ 0");
        Weights = weights;
        Rho = rho;
        ThresholdOverride = threshold;
        MaxReuseOverride = maxReuse;
    }

    /// <summary>The network's file as given, or null for the bundled one.</summary>
    public string? Weights { get; }
    /// <summary>ρ as given (checked against the network), or null.</summary>
    public double? Rho { get; }
    /// <summary>The greedy threshold as given, or null for the network's.</summary>
    public double? ThresholdOverride { get; }
    /// <summary>The reuse bound as given, or null for the network's.</summary>
    public int? MaxReuseOverride { get; }

    /// <inheritdoc/>
    public override bool IsDynamic => true;

    /// <inheritdoc/>
    public override string Spec
    {
        get
        {
            var parts = new List<string>();
            if (Weights is not null)
                parts.Add("weights=" + Weights);
            if (Rho is double r)
                parts.Add("rho=" + r.ToString("R", CultureInfo.InvariantCulture));
            if (ThresholdOverride is double t)
                parts.Add("threshold=" + t.ToString("R", CultureInfo.InvariantCulture));
            if (MaxReuseOverride is int m)
                parts.Add("maxreuse=" + m.ToString(CultureInfo.InvariantCulture));
            return parts.Count == 0 ? "ada" : "ada:" + string.Join(',', parts);
        }
    }

    /// <summary>Always throws: the plan is decided at run time, per image, by the network.</summary>
    public override StepPlan Plan(int steps, int depth) =>
        throw new PlanException($"{Spec} decides at run time: its network reads each image's latent after ρ·S steps and plans the rest " +
            "(the run report shows the plans executed)");

    /// <summary>
    /// The network's file: <see cref="Weights"/>, or the bundled network found where the bundled models are (for an
    /// image model, <paramref name="frames"/> = 1: <see cref="BundledWeights"/>; for a video model:
    /// <see cref="BundledVideoWeights"/>). <see cref="InvalidRequestException"/> when it does not exist.
    /// </summary>
    public string ResolveWeights(int frames = 1)
    {
        if (Weights is not null)
            return File.Exists(Weights) ? Weights
                : throw new InvalidRequestException($"ada: the decision network '{Weights}' does not exist", "weights");
        string bundled = frames > 1 ? BundledVideoWeights : BundledWeights;
        return DitPipeline.FindModelsFile(bundled, out var searched) ?? throw new InvalidRequestException(
            $"ada: the bundled decision network models/{bundled} " + (frames > 1 ? $"(for a video model, clips of {frames} frames) " : "") +
            $"was not found (looked in {searched}); it is trained by tools/ (issue 15) — give one with ada:weights=FILE", "weights");
    }

    /// <inheritdoc/>
    /// <exception cref="InvalidRequestException">The network does not exist, or was trained for another step count,
    /// another ρ, or a boundary the model does not have; the message names the field.</exception>
    public override StepController CreateController(int steps, int depth, int images) => CreateController(steps, depth, images, 1);

    /// <inheritdoc/>
    /// <exception cref="InvalidRequestException">The network does not exist, was trained for images and the model makes
    /// clips (or the reverse, or clips of another length: <c>num_frames</c>), or for another step count, another ρ, or a
    /// boundary the model does not have; the message names the field.</exception>
    public override StepController CreateController(int steps, int depth, int images, int frames)
    {
        string path = ResolveWeights(frames);
        var config = AdaConfig.Read(path);
        CheckFrames(path, config, frames);
        if (steps != config.Steps)
            throw new InvalidRequestException($"ada: the network {path} decides for steps = {config.Steps}; the run has {steps} steps (give --steps {config.Steps})", "steps");
        if (Rho is double r && Math.Abs(r * config.Steps - config.RhoSteps) > 1e-6)
            throw new InvalidRequestException($"ada: rho = {r.ToString(CultureInfo.InvariantCulture)} does not match the network {path}, whose rho_steps / steps = " +
                $"{config.RhoSteps}/{config.Steps}", "rho");
        if (config.Boundary >= depth)
            throw new InvalidRequestException($"ada: the network's boundary {config.Boundary} does not fit the model's {depth} blocks", "boundary");
        return new Controller(path, config, ThresholdOverride ?? config.Threshold, MaxReuseOverride ?? config.MaxReuse, steps, depth, images);
    }

    private static void CheckFrames(string path, AdaConfig config, int frames)
    {
        if (frames == config.Frames)
            return;
        string what = config.Frames == 1 ? "an image network (no num_frames)" : $"a video network for clips of num_frames = {config.Frames} frames";
        string model = frames == 1 ? "an image model" : $"a video model whose clips have {frames} frames";
        throw new InvalidRequestException($"ada: the network {path} is {what}; the run's model is {model}" +
            (frames > 1 ? $" (give a network with num_frames = {frames})" : " (give an image network, without num_frames)"), "num_frames");
    }

    private sealed class Controller(string path, AdaConfig config, double threshold, int maxReuse, int steps, int depth, int images)
        : StepController(steps, depth, images), IDisposable
    {
        private readonly StepKind[][] _plans = Enumerable.Range(0, images).Select(_ => new StepKind[steps]).ToArray();
        private readonly float[] _probs = new float[images * config.Outputs];
        private AdaDecisionNet? _net;
        private AdaActivations? _a;
        private Tensor? _labels;
        private bool _decided;

        public override int Boundary => config.Boundary;

        public override void Begin(IOps ops, IReadOnlyList<int> labels, int channels, int size, int frames)
        {
            CheckFrames(path, config, frames);
            if (channels != config.InChannels || size != config.InputSize)
                throw new InvalidRequestException($"ada: the network {path} reads {config.InChannels}×{config.InputSize}×{config.InputSize} latents; " +
                    $"the run's are {channels}×{size}×{size}", "LatentSize");
            for (int i = 0; i < labels.Count; i++)
                if (labels[i] < 0 || labels[i] > config.NumClasses)
                    throw new InvalidRequestException($"ada: class label {labels[i]} ({(frames > 1 ? "clip" : "image")} {i}) is outside the network's [0, {config.NumClasses}]", "Labels");
            try
            {
                _net = AdaDecisionNet.Load(path, ops);
                _a = _net.CreateActivations(labels.Count);
                _labels = ops.Device.Allocate(DType.I32, labels.Count);
                _labels.CopyFrom<int>(labels.ToArray());
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        public override void Decide(int step, ReadOnlySpan<float> probe, Span<StepKind> kinds)
        {
            if (step < config.RhoSteps - 1)
                kinds.Fill(StepKind.Full);
            else if (step == config.RhoSteps - 1)
                kinds.Fill(StepKind.Cache);
            else if (!_decided)
                throw new InvalidOperationException($"ada: step {step} comes before the network has decided (it decides after step {config.RhoSteps - 1})");
            else
                for (int i = 0; i < kinds.Length; i++)
                    kinds[i] = _plans[i][step];
        }

        public override void Observe(in StepObservation observation)
        {
            if (observation.Step != config.RhoSteps - 1)
                return;
            if (_net is null)
                throw new InvalidOperationException("ada: the run did not call Begin before its steps");
            _net.Probabilities(observation.Latent, _labels!, _a!, _probs);
            int k = config.Outputs;
            for (int i = 0; i < Images; i++)
                AdaDecisionNet.GreedyPlan(_probs.AsSpan(i * k, k), config.RhoSteps, threshold, maxReuse, _plans[i]);
            _decided = true;
        }

        public void Dispose()
        {
            _a?.Dispose();
            _net?.Dispose();
            _labels?.Dispose();
            (_a, _net, _labels) = (null, null, null);
        }
    }
}

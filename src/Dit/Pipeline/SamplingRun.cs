using System.Diagnostics;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Sampling;
using BlockDance.Kernels;
using BlockDance.Runtime;

namespace BlockDance.Dit.Pipeline;

/// <summary>
/// One generation: every buffer it needs (latents, the model batch, timesteps and labels for all steps, activations,
/// the feature cache) is allocated when the run is created, so the steps themselves allocate nothing and copy nothing
/// between host and device. Guidance runs the batch <c>[cond…, uncond…]</c> with the conditional latents duplicated,
/// as the original DiT's <c>forward_with_cfg</c> does. Each step follows the cache policy's <see cref="StepController"/>:
/// a static plan (see <see cref="StepPlan"/>) for the whole batch, or an adaptive policy's decision per image, executed
/// by an <see cref="AdaptiveExecutor"/> (docs/caching.md).
/// </summary>
/// <remarks>
/// <para>
/// Threads: several runs may share one model (and its ops) from several threads. The ops' scratch is
/// shared, so each run holds the device's <see cref="Device.StepLock"/> around each step (the model forward and the
/// sampler update), around its set-up and around the download of its result; the runs then take turns step by step
/// and give exactly the bytes they give one after another. One run is used by one thread at a time.
/// </para>
/// <para>
/// Ownership: a run holds a lease on its model (taken once, when the run is created), so the model may be disposed
/// before the run; its weights go when the run is disposed too. Using a disposed run throws
/// <see cref="ObjectDisposedException"/>; disposing twice is harmless.
/// </para>
/// </remarks>
public sealed class SamplingRun : IDisposable
{
    private readonly IDiffusionModel _model;
    private readonly Lease? _modelLease;
    private readonly Lock _stepLock;
    private bool _disposed;
    private readonly IOps _ops;
    private readonly GenerationRequest _request;
    private readonly Sampler _sampler;
    private readonly IStepNoise _noiseSource;
    private readonly List<Tensor> _owned = [];
    private readonly Tensor _latent;       // (n·F, C, H, W): the sampler's state (F = 1 for images)
    private readonly Tensor? _modelInput;  // (2n, C, H, W) with guidance
    private readonly Tensor? _condHalf, _uncondHalf; // its two halves
    private readonly Tensor _output;       // (B, C', H, W)
    private readonly Tensor? _guided;      // (n, C', H, W) with guidance
    private readonly Tensor _noise;        // (n, C, H, W)
    private readonly Tensor _labels;       // (B) I32
    private readonly Tensor[] _timesteps;  // per step: (B) F32 views of one (S, B) table
    private readonly IForwardPass _pass;
    private readonly FeatureCache? _cache;
    private readonly StepController _controller;
    private readonly AdaptiveExecutor? _adaptive;   // null for a static plan
    private readonly StepKind[] _kinds;             // per image: this step's decision
    private readonly float[] _indicator;            // per image: this step's indicator
    private readonly StepPlan? _plan;               // the static plan
    private readonly int _guidedChannels;
    private int _nextStep;

    /// <summary>
    /// Validates the request against the model and allocates every buffer of the run (on the model's device). The model
    /// is an image DiT or a video Latte: a video sample is a clip of F frames, its latent (n, F, C, H, W) held as
    /// (n·F, C, H, W), which the samplers and guidance treat frame by frame (their math is per element and per channel,
    /// so that is exactly Latte's <c>forward_with_cfg</c> on <c>model_out[:, :, :4]</c>). Adaptive cache policies decide
    /// per sample: per image, or per clip on a video model.
    /// </summary>
    /// <exception cref="InvalidRequestException">The request does not fit the model (or the policy's decision network
    /// does not fit it); nothing stays allocated.</exception>
    public SamplingRun(IDiffusionModel model, GenerationRequest request)
    {
        _model = model;
        _ops = model.Ops;
        _request = request;
        _stepLock = _ops.Device.StepLock;
        var config = model.Config;
        if (model.IsDisposed)
            throw new ObjectDisposedException(model.GetType().Name, $"cannot start a run: the {model.GetType().Name} was disposed");
        _modelLease = model.AcquireLease("a SamplingRun");
        using var scope = _stepLock.EnterScope();
        try
        {
            int n = request.Labels.Count;
            if (n == 0)
                throw new InvalidRequestException("no images requested: give at least one class label", nameof(request.Labels));
            for (int i = 0; i < n; i++)
                if (request.Labels[i] < 0 || request.Labels[i] > config.NumClasses)
                    throw new InvalidRequestException($"class label {request.Labels[i]} (image {i}) is outside [0, {config.NumClasses - 1}] (or {config.NumClasses} for unconditional)", nameof(request.Labels));
            if (!float.IsFinite(request.GuidanceScale))
                throw new InvalidRequestException($"guidance scale must be finite, not {request.GuidanceScale}", nameof(request.GuidanceScale));
            if (request.Sampler == SamplerKind.Ancestral && !config.LearnSigma)
                throw new InvalidRequestException("the ancestral sampler needs a model with learned sigma (2·C output channels); use ddim", nameof(request.Sampler));
            int size = request.LatentSize ?? config.InputSize;
            if (size <= 0 || size % config.PatchSize != 0)
                throw new InvalidRequestException($"latent size {size} is not a positive multiple of the patch size {config.PatchSize}", nameof(request.LatentSize));
            try
            {
                _sampler = Sampler.Create(request.Sampler, request.Steps, request.Eta);
            }
            catch (ArgumentException e)   // steps outside [1, 1000], a negative or undefined eta
            {
                throw new InvalidRequestException(e.Message, e.ParamName, e);
            }
            _controller = request.Cache.CreateController(request.Steps, config.Depth, n, model.Frames);
            _plan = _controller.IsStatic ? ((PlanController)_controller).Plan : null;
            _kinds = new StepKind[n];
            _indicator = new float[n];
            _noiseSource = request.StepNoise ?? new PhiloxStepNoise(request.Seed);
            _guidedChannels = request.GuidedChannels ?? config.Numerics.GuidedChannels;
            if (_guidedChannels < 0 || _guidedChannels > config.OutChannels)
                throw new InvalidRequestException($"guided channels {_guidedChannels} outside [0, {config.OutChannels}]", nameof(request.GuidedChannels));

            bool cfg = request.UsesGuidance;
            int batch = cfg ? 2 * n : n;
            int f = model.Frames; // frame rows per sample
            Images = n;
            ModelBatch = batch;
            var type = _ops.ActivationType;
            Tensor New(DType t, params int[] shape)
            {
                var tensor = _ops.Device.Allocate(t, shape);
                _owned.Add(tensor);
                return tensor;
            }
            _latent = New(type, n * f, config.InChannels, size, size);
            _noise = New(type, n * f, config.InChannels, size, size);
            _output = New(type, batch * f, config.OutChannels, size, size);
            if (cfg)
            {
                _modelInput = New(type, batch * f, config.InChannels, size, size);
                _condHalf = _modelInput.Slice(0, n * f);
                _uncondHalf = _modelInput.Slice(n * f, n * f);
                _guided = New(type, n * f, config.OutChannels, size, size);
            }
            var labels = new int[batch];
            for (int i = 0; i < n; i++)
            {
                labels[i] = request.Labels[i];
                if (cfg)
                    labels[n + i] = config.NullClass;
            }
            _labels = New(DType.I32, batch);
            _labels.CopyFrom<int>(labels);
            var table = new float[request.Steps * batch];
            for (int k = 0; k < request.Steps; k++)
                Array.Fill(table, _sampler.Timestep(k), k * batch, batch);
            var timesteps = New(DType.F32, request.Steps, batch);
            timesteps.CopyFrom<float>(table);
            _timesteps = Enumerable.Range(0, request.Steps).Select(k => timesteps.Slice(k, 1).Reshape(batch)).ToArray();
            _pass = model.CreatePass(batch, size, size);
            if (_plan is { UsesCache: true })
                _cache = new FeatureCache(_ops.Device, type, _pass.Stream.Dim(0), _pass.Stream.Dim(1), _pass.Stream.Dim(2));
            if (_plan is null)   // per-item decisions: an item is an image, or a clip of a video model
            {
                _adaptive = new AdaptiveExecutor((IItemPass)_pass, _ops, config.Depth, _controller, n, batch);
                _controller.Begin(_ops, request.Labels, config.InChannels, size, f);
            }

            if (request.InitialNoise is { } initial)
            {
                if (initial.Length != _latent.Count)
                    throw new InvalidRequestException($"initial noise has {initial.Length} values; the latent {_latent.ShapeString} needs {_latent.Count}", nameof(request.InitialNoise));
                Upload(initial, _latent);
            }
            else
            {
                _ops.RandomNormal(_latent, request.Seed, 0);
            }
            Report = new RunReport(_ops.Device.Name, request.Cache.Spec, _controller, new MacCount(config, _pass.Tokens), batch, n,
                _cache?.Bytes ?? _adaptive?.Bytes ?? 0);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The static plan, or for an adaptive policy the plan image 0 executed so far (Full for the steps not run yet).</summary>
    public StepPlan Plan => _plan ?? Report.Plan;

    /// <summary>The controller deciding this run's steps.</summary>
    public StepController Controller => _controller;

    /// <summary>The run's report, filled in step by step.</summary>
    public RunReport Report { get; }

    /// <summary>Images generated (labels of the request).</summary>
    public int Images { get; }

    /// <summary>Batch the model runs on: twice <see cref="Images"/> with guidance.</summary>
    public int ModelBatch { get; }
    /// <summary>Sampling steps of the run.</summary>
    public int Steps => _controller.Steps;

    /// <summary>True when every step has run.</summary>
    public bool Finished => _nextStep >= Steps;

    /// <summary>Index of the step <see cref="Step"/> runs next (k = 0 is the noisiest).</summary>
    public int NextStep => _nextStep;

    /// <summary>The latent being denoised, (n·F, C, H, W) on the model's device (F = 1 for an image model).</summary>
    public Tensor Latent => _latent;

    /// <summary>The raw model output of the last step, (B·F, C', H, W) with B = 2n under guidance (cond half first).</summary>
    public Tensor ModelOutput => _output;

    /// <summary>The feature cache of this run, or null when the plan never caches.</summary>
    internal FeatureCache? Cache => _cache;

    /// <summary>Observes each computed block's output (similarity analysis); null for none.</summary>
    public IBlockObserver? BlockObserver { get; set; }

    /// <summary>Runs the next step and returns its index.</summary>
    public int Step()
    {
        ThrowIfDisposed();
        if (Finished)
            throw new InvalidOperationException("the run has finished");
        int k = _nextStep;
        long start = Stopwatch.GetTimestamp();
        using (_stepLock.EnterScope())
            StepLocked(k);
        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        Report.StepMilliseconds[k] = ms;
        Report.TotalMilliseconds += ms;
        _nextStep++;
        return k;
    }

    private void ThrowIfDisposed()
    {
        if (_disposed)
            throw new ObjectDisposedException(nameof(SamplingRun), "the SamplingRun was disposed");
    }

    /// <summary>One step's device work, under the device's step lock.</summary>
    private void StepLocked(int k)
    {
        Tensor input = _latent;
        if (_modelInput is not null)
        {
            // forward_with_cfg: the model sees [x, x] with labels [y, null].
            _ops.Device.Copy(_latent, _condHalf!);
            _ops.Device.Copy(_latent, _uncondHalf!);
            input = _modelInput;
        }
        if (_adaptive is null)
            Forward(k, input);
        else
            _adaptive.Forward(k, input, _timesteps[k], _labels, _output, BlockObserver, _kinds, _indicator);
        Tensor eps = _output;
        if (_guided is not null)
        {
            _ops.GuidanceCombine(_output, _guidedChannels, _request.GuidanceScale, _guided);
            eps = _guided;
        }
        Tensor? noise = null;
        if (_sampler.NeedsNoise(k))
        {
            _noiseSource.Fill(_ops, k, _noise);
            noise = _noise;
        }
        _sampler.Step(_ops, k, _latent, eps, noise);
        if (_adaptive is not null)
        {
            long decide = Stopwatch.GetTimestamp();
            _controller.Observe(new StepObservation(k, _kinds, _indicator, _latent));
            _observeMilliseconds += Stopwatch.GetElapsedTime(decide).TotalMilliseconds;
            Report.DecisionMilliseconds = _adaptive.DecisionMilliseconds + _observeMilliseconds;
            Report.Record(k, _kinds, _indicator);
        }
        _ops.Device.Synchronize();
    }

    private double _observeMilliseconds;

    // A static plan: one kind for the whole batch.
    private void Forward(int k, Tensor input)
    {
        var a = _pass;
        var t = _timesteps[k];
        var plan = _plan!;
        int boundary = plan.Boundary, depth = _model.Config.Depth;
        switch (plan[k])
        {
            case StepKind.Full:
                a.Condition(t, _labels);
                a.EmbedTokens(input);
                a.RunBlocks(0, depth, BlockObserver);
                a.Final(_output);
                break;
            case StepKind.Cache:
                a.Condition(t, _labels);
                a.EmbedTokens(input);
                a.RunBlocks(0, boundary, BlockObserver);
                _cache!.Store(a.Stream, k);
                a.RunBlocks(boundary, depth, BlockObserver);
                a.Final(_output);
                break;
            case StepKind.Reuse:
                a.Condition(t, _labels);               // this step's conditioning
                _cache!.Load(a.Stream, k);             // the output of block i−1 from the last Cache step
                a.RunBlocks(boundary, depth, BlockObserver);
                a.Final(_output);
                break;
        }
    }

    /// <summary>Runs every remaining step and returns the final latent (n, C, H, W), or (n, F, C, H, W) for a video model, on the host.</summary>
    public float[] Run()
    {
        ThrowIfDisposed();
        while (!Finished)
            Step();
        float[] result;
        using (_stepLock.EnterScope())
            result = _latent.ToFloatArray();
        int bad = Array.FindIndex(result, v => !float.IsFinite(v));
        if (bad >= 0)
            throw new NonFiniteResultException($"the sampling run produced a non-finite value ({result[bad]}) at latent element {bad}; " +
                "the weights or the settings (guidance scale, steps) make the sampler diverge");
        return result;
    }

    private void Upload(float[] values, Tensor dst)
    {
        using var tmp = _ops.Device.FromFloats(values, dst.DType, dst.Shape.ToArray());
        _ops.Device.Copy(tmp, dst);
    }

    /// <summary>Releases the run's buffers (device memory).</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        using (_stepLock.EnterScope())
        {
            _pass?.Dispose();
            _adaptive?.Dispose();
            (_controller as IDisposable)?.Dispose();
            _cache?.Dispose();
            foreach (var t in _owned)
                t.Dispose();
            _owned.Clear();
        }
        _modelLease?.Dispose();
    }
}

/// <summary>A run whose result contains NaN or infinity.</summary>
public sealed class NonFiniteResultException(string message) : BlockDanceException(message);

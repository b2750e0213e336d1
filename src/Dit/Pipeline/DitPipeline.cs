using BlockDance.Kernels;
using BlockDance.Runtime;

namespace BlockDance.Dit.Pipeline;

/// <summary>
/// The library's entry point: a DiT checkpoint (or a Latte video checkpoint) opened on a device, ready to generate. It
/// owns the memory-mapped checkpoint, the device's ops and the model (whose CPU weights are views of the mapped file)
/// and releases them in the right order on <see cref="Dispose"/>.
/// </summary>
/// <example><code>
/// using var pipeline = DitPipeline.OpenBundled();
/// var result = pipeline.Generate(new GenerationRequest { Labels = [3, 3, 3, 3], Cache = CachePolicy.Parse("blockdance:n=2") });
/// result.SaveImageGrid("out.png");
/// </code></example>
/// <remarks>
/// Threads: one pipeline may be shared; its <see cref="Generate"/> calls run one at a time (a lock), each on its own
/// buffers, so concurrent calls give the bytes they would give one after another. <see cref="Dispose"/> waits for a
/// running generation; later calls throw <see cref="ObjectDisposedException"/>.
/// </remarks>
public sealed class DitPipeline : IDisposable
{
    /// <summary>The environment variable that overrides where the bundled "shapes" model is found.</summary>
    public const string ModelEnvironmentVariable = "BLOCKDANCE_MODEL";

    private static readonly Dictionary<string, string> s_bundledFiles = new(StringComparer.Ordinal)
    {
        ["shapes"] = "dit-shapes-32.safetensors",
        ["shapes-video"] = "latte-shapes-video-32.safetensors",   // trained by tools/latte_train.py
    };

    private readonly Lock _gate = new();
    private bool _disposed;

    private DitPipeline(DitCheckpoint checkpoint, IOps ops, IDiffusionModel model, PipelineOptions options)
    {
        Checkpoint = checkpoint;
        Ops = ops;
        Diffusion = model;
        Options = options;
        var metadata = checkpoint.File.Metadata;
        ClassNames = metadata.TryGetValue("class_names", out var names) && names.Length > 0 ? names.Split(',') : [];
        IsPixelSpace = metadata.GetValueOrDefault("pixel_space") == "true";
    }

    /// <summary>Names of the models that come with the repository (models/README.md): <c>"shapes"</c> (images; also in the
    /// BlockDance.Models.Shapes package) and <c>"shapes-video"</c> (clips of a small Latte; in the repository's
    /// <c>models/</c> only).</summary>
    public static IReadOnlyList<string> BundledModels { get; } = [.. s_bundledFiles.Keys];

    /// <summary>The model's configuration (depth, width, heads, patch, channels, classes, input size; frames per clip
    /// for a video model, 0 for an image model).</summary>
    public DitConfig Config => Diffusion.Config;

    /// <summary>True for a video (Latte) checkpoint: samples are clips of <see cref="DitConfig.Frames"/> frames.</summary>
    public bool IsVideo => Config.Frames > 0;

    /// <summary>Class names from the checkpoint's <c>class_names</c> metadata (index = label); empty if it has none.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>True when the checkpoint's metadata says <c>pixel_space=true</c>: results are images in [−1, 1].</summary>
    public bool IsPixelSpace { get; }

    /// <summary>The options the pipeline was opened with.</summary>
    public PipelineOptions Options { get; }

    /// <summary>The opened checkpoint (file, layout, metadata). Owned by the pipeline: do not dispose it.</summary>
    public DitCheckpoint Checkpoint { get; }

    /// <summary>The device's ops. Owned by the pipeline: do not dispose them.</summary>
    public IOps Ops { get; }

    /// <summary>
    /// The image model, for callers that drive a <see cref="SamplingRun"/> or a forward themselves (analysis, parity).
    /// Owned by the pipeline; such direct use is not covered by the pipeline's lock.
    /// </summary>
    /// <exception cref="InvalidRequestException">The checkpoint is a Latte video model (use <see cref="Diffusion"/>).</exception>
    public DitModel Model => Diffusion as DitModel ?? throw new InvalidRequestException(
        $"{Checkpoint.Path} is a Latte video model ({Config.Frames} frames); this needs an image DiT", nameof(Model));

    /// <summary>
    /// The model, image (<see cref="DitModel"/>) or video (<see cref="LatteModel"/>), for callers that drive a
    /// <see cref="SamplingRun"/> themselves. Owned by the pipeline, like <see cref="Model"/>.
    /// </summary>
    public IDiffusionModel Diffusion { get; }

    /// <summary>
    /// The path of a bundled model's file, or null if it is not found. Looked up in this order: the environment
    /// variable <c>BLOCKDANCE_MODEL</c> (for "shapes"; returned as given, even when missing, so that a wrong setting is
    /// reported rather than silently replaced), <c>{AppContext.BaseDirectory}/models/FILE</c> (where the NuGet package
    /// puts it), <c>models/FILE</c> in the nearest parent folder of the application's folder (the repository), and
    /// <c>models/FILE</c> under the current folder.
    /// </summary>
    /// <exception cref="InvalidRequestException">The name is not one of <see cref="BundledModels"/>.</exception>
    public static string? FindBundled(string name = "shapes") =>
        FindBundled(name, Environment.GetEnvironmentVariable(ModelEnvironmentVariable), AppContext.BaseDirectory, Directory.GetCurrentDirectory());

    /// <summary><see cref="FindBundled(string)"/> with its inputs given (tests).</summary>
    internal static string? FindBundled(string name, string? environment, string baseDirectory, string currentDirectory)
    {
        string file = BundledFile(name);
        if (name == "shapes" && !string.IsNullOrEmpty(environment))
            return environment;
        foreach (string candidate in Candidates(file, baseDirectory, currentDirectory))
            if (File.Exists(candidate))
                return candidate;
        return null;
    }

    /// <summary>
    /// Opens a bundled model (<see cref="FindBundled(string)"/>) on the device of <paramref name="options"/>.
    /// </summary>
    /// <exception cref="InvalidRequestException">The name is not one of <see cref="BundledModels"/>.</exception>
    /// <exception cref="CheckpointException">The model's file was not found; the message lists where it was looked for.</exception>
    public static DitPipeline OpenBundled(string name = "shapes", PipelineOptions? options = null)
    {
        string path = FindBundled(name) ?? throw new CheckpointException(
            $"the bundled model '{name}' ({BundledFile(name)}) was not found; looked in {string.Join(", ", Candidates(BundledFile(name), AppContext.BaseDirectory, Directory.GetCurrentDirectory()).Distinct())}; " +
            $"set {ModelEnvironmentVariable} to its path or open a checkpoint with DitPipeline.Open");
        return Open(path, options);
    }

    /// <summary>
    /// Opens a DiT checkpoint (safetensors, original or diffusers layout) or a Latte video checkpoint (one with
    /// <c>temp_embed</c>): validates every tensor, infers the configuration, opens the device and loads the weights.
    /// </summary>
    /// <exception cref="Runtime.Safetensors.SafetensorsException">No file at the path ("no such file: PATH"), a folder
    /// ("PATH is a folder, not a file"), a file that cannot be read, or not valid safetensors.</exception>
    /// <exception cref="InvalidRequestException">An option is out of range (threads, a dtype the device lacks).</exception>
    /// <exception cref="CheckpointException">The tensors are not a DiT's; the message lists what is missing or mis-shaped.</exception>
    public static DitPipeline Open(string checkpointPath, PipelineOptions? options = null) => Open(checkpointPath, options, wrapOps: null);

    /// <summary><see cref="Open(string, PipelineOptions?)"/>, with the ops wrapped (the CLI's per-op profiler).</summary>
    internal static DitPipeline Open(string checkpointPath, PipelineOptions? options, Func<IOps, IOps>? wrapOps)
    {
        options ??= new PipelineOptions();
        if (options.Threads < 0)
            throw new InvalidRequestException($"Threads must be 0 (every core) or positive, not {options.Threads}", nameof(options.Threads));
        var checkpoint = DitCheckpoint.Open(checkpointPath, options.Heads, options.Numerics);
        IOps? ops = null;
        try
        {
            ops = Backends.Open(DeviceNames.Name(options.Device), options.Threads, options.DType);
            if (wrapOps is not null)
                ops = wrapOps(ops);
            IDiffusionModel model = checkpoint.Config.Frames > 0 ? LatteModel.Load(checkpoint, ops) : DitModel.Load(checkpoint, ops);
            return new DitPipeline(checkpoint, ops, model, options);
        }
        catch
        {
            ops?.Dispose();
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Runs one generation: the request's labels, seed, steps, sampler, guidance and cache policy. Reports after every
    /// step through <paramref name="progress"/> (called synchronously on this thread), and checks
    /// <paramref name="cancellationToken"/> before every step and once after the last: a cancelled run throws
    /// <see cref="OperationCanceledException"/> and returns nothing. The same request gives the same bytes.
    /// </summary>
    /// <exception cref="InvalidRequestException">The request does not fit the model (a label out of range, a latent size
    /// that is not a multiple of the patch size, ...).</exception>
    /// <exception cref="NonFiniteResultException">The run diverged (NaN or infinity in the result).</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The pipeline was disposed.</exception>
    public GenerationResult Generate(GenerationRequest request, IProgress<GenerationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            cancellationToken.ThrowIfCancellationRequested();
            using var run = new SamplingRun(Diffusion, request);
            while (!run.Finished)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int k = run.Step();
                progress?.Report(new GenerationProgress(k, run.Steps, run.Plan[k], run.Report.StepMilliseconds[k]));
            }
            cancellationToken.ThrowIfCancellationRequested();
            float[] latents = run.Run();   // every step is done: downloads the result and checks it is finite
            int size = request.LatentSize ?? Config.InputSize;
            int[] shape = IsVideo ? [request.Labels.Count, Config.Frames, Config.InChannels, size, size] : [request.Labels.Count, Config.InChannels, size, size];
            return new GenerationResult(latents, shape, request, run.Report,
                Path.GetFileName(Checkpoint.Path), IsPixelSpace);
        }
    }

    /// <summary>Releases the model, the device and the checkpoint, in that order; waits for a running generation.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
            Diffusion.Dispose();
            Ops.Dispose();
            Checkpoint.Dispose();
        }
    }

    private static string BundledFile(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return s_bundledFiles.TryGetValue(name, out var file) ? file
            : throw new InvalidRequestException($"no bundled model '{name}'; bundled: {string.Join(", ", BundledModels)}", nameof(name));
    }

    /// <summary>A file shipped under <c>models/</c> (e.g. a decision network), looked for where the bundled models are; null
    /// when absent, with <paramref name="searched"/> listing the places looked in.</summary>
    internal static string? FindModelsFile(string file, out string searched)
    {
        var candidates = Candidates(file, AppContext.BaseDirectory, Directory.GetCurrentDirectory()).Distinct().ToList();
        searched = string.Join(", ", candidates);
        return candidates.FirstOrDefault(File.Exists);
    }

    /// <summary>Where a bundled file is looked for, in order (the environment variable aside).</summary>
    private static IEnumerable<string> Candidates(string file, string baseDirectory, string currentDirectory)
    {
        var start = new DirectoryInfo(baseDirectory);
        yield return Path.Combine(start.FullName, "models", file);
        for (var d = start.Parent; d is not null; d = d.Parent)
            yield return Path.Combine(d.FullName, "models", file);
        yield return Path.Combine(Path.GetFullPath(currentDirectory), "models", file);
    }
}

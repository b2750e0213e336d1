using System.Globalization;
using BlockDance.Dit;
using BlockDance.Dit.Pipeline;
using BlockDance.Dit.Sampling;
using BlockDance.Runtime;
using BlockDance.Runtime.Safetensors;

namespace BlockDance.Cli.Commands;

/// <summary>
/// <c>blockdance parity</c>: runs the model on a PyTorch dump's inputs (dump-format.md) and compares every tensor the
/// dump holds. Exit code 0 only when every tensor is within its tolerance.
/// </summary>
public sealed class ParityCommand : ICommand
{
    public const string DumpFormat = "blockdance.dump/1";

    /// <inheritdoc/>
    public CommandSpec Spec { get; } = ModelOptions.Add(new CommandSpec("parity",
            "Compare this implementation with a PyTorch dump: per-block outputs, the model output and a sampling run."), weightsRequired: true)
        .Option("--dump", "FILE", "reference dump written by tools/ (format blockdance.dump/1)")
        .Option("--tolerance", "F", "max relative error max|a−b|/max|b| allowed for forward tensors (default by --dtype: f32 1e-4, f16 4e-3, bf16 3e-2)")
        .Option("--sample-tolerance", "F", "the same for the sampling run, whose error compounds over steps (default: f32 1e-3, f16 1e-2, bf16 6e-2)");

    /// <inheritdoc/>
    public int Run(ParsedArgs args, Console2 console)
    {
        string weights = ModelOptions.Weights(args, required: true);
        string dumpPath = Inputs.Require(args.RequiredString("--dump"), "--dump");
        // fp32 agrees with PyTorch fp32 to ~1e-6 per forward; 16-bit storage is judged by its precision (measured on the
        // fixtures: f16 ~1e-3, bf16 ~1e-2 relative).
        var dtype = args.Choice("--dtype", DTypes.ParseActivationType);
        double tolerance = args.Has("--tolerance") ? args.Double("--tolerance", 0, 1) : dtype switch { DType.F16 => 4e-3, DType.BF16 => 3e-2, _ => 1e-4 };
        double sampleTolerance = args.Has("--sample-tolerance") ? args.Double("--sample-tolerance", 0, 1) : dtype switch { DType.F16 => 1e-2, DType.BF16 => 6e-2, _ => 1e-3 };
        using var dump = SafetensorsFile.Open(dumpPath);
        string format = dump.Metadata.GetValueOrDefault("format") ?? "(none)";
        if (format != DumpFormat)
            throw new InvalidDataException($"{dumpPath}: dump format is '{format}', this build reads '{DumpFormat}'; re-run the dump script (tools/make_fixtures.py)");
        string model = dump.Metadata.GetValueOrDefault("model") ?? "dit";
        if (model is not ("dit" or "latte"))
            throw new InvalidDataException($"{dumpPath}: dump of model family '{model}'; 'dit' and 'latte' are supported");
        DitNumerics? numerics = dump.Metadata.GetValueOrDefault("layout") switch
        {
            "original" => DitNumerics.Original,
            "diffusers" => DitNumerics.Diffusers,
            null => null,
            string other => throw new InvalidDataException($"{dumpPath}: unknown layout '{other}' (expected original or diffusers)"),
        };
        int? heads = Meta(dump, "num_heads");
        int rank = model == "latte" ? 5 : 4;   // Latte: [B, F, C, H, W] (docs/dump-format-extensions.md)
        ValidateSections(dump, rank);

        using var session = ModelOptions.Open(weights, ModelOptions.Read(args, numerics: args.Has("--numerics") ? null : numerics, heads: args.OptionalInt("--heads") ?? heads));
        if ((session.Config.Frames > 0) != (model == "latte"))
            throw new InvalidDataException($"{dumpPath}: a dump of a '{model}' model, but {session.Checkpoint.Path} is {(session.Config.Frames > 0 ? "a Latte" : "a DiT")} checkpoint");
        var results = new List<Comparison>();
        if (dump.Contains("inputs.x"))
            results.AddRange(session.Diffusion is LatteModel latte ? CompareVideoForward(session, latte, dump, tolerance) : CompareForward(session, dump, tolerance));
        if (dump.Contains("sample.noise"))
            results.Add(CompareSampling(session, dump, sampleTolerance, console));
        if (results.Count == 0)
            throw new InvalidDataException($"{dumpPath}: the dump has neither 'inputs.x' nor 'sample.noise'; nothing to compare");

        console.Out.WriteLine($"{"tensor",-24} {"shape",-18} {"max_abs",10} {"max_rel",10} {"tol",8}  result");
        foreach (var r in results)
            console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.Name,-24} {r.Shape,-18} {r.MaxAbs,10:0.00e+00} {r.MaxRel,10:0.00e+00} {r.Tolerance,8:0e+00}  {(r.Pass ? "pass" : "FAIL")}"));
        int failed = results.Count(r => !r.Pass);
        console.Out.WriteLine(failed == 0
            ? $"parity: all {results.Count} tensors pass ({session.Ops.Device.Name}, {session.Checkpoint.Layout.ToString().ToLowerInvariant()} layout)"
            : $"parity: {failed} of {results.Count} tensors FAIL");
        return failed == 0 ? 0 : 1;
    }

    /// <summary>Checks every section's tensors and shapes before any work, so a broken dump fails at once, naming what is wrong.</summary>
    private static void ValidateSections(SafetensorsFile dump, int rank)
    {
        var problems = new List<string>();
        void Need(string key, int rank)
        {
            if (!dump.TryGet(key, out var info))
                problems.Add($"'{key}' is missing");
            else if (info.Rank != rank)
                problems.Add($"'{key}' has shape {info.ShapeString}, expected rank {rank}");
        }
        if (dump.Contains("inputs.x"))
        {
            Need("inputs.x", rank);
            Need("inputs.t", 1);
            Need("inputs.y", 1);
            if (problems.Count == 0 && (dump["inputs.t"].Shape[0] != dump["inputs.x"].Shape[0] || dump["inputs.y"].Shape[0] != dump["inputs.x"].Shape[0]))
                problems.Add($"inputs.t and inputs.y must have one entry per item of inputs.x {dump["inputs.x"].ShapeString}");
        }
        if (dump.Contains("sample.noise"))
        {
            int before = problems.Count;
            Need("sample.noise", rank);
            Need("sample.y", 1);
            Need("sample.out", rank);
            if (!dump.Metadata.ContainsKey("steps"))
                problems.Add("the sampling section needs 'steps' metadata");
            if (problems.Count == before)
            {
                var noise = dump["sample.noise"];
                if (!dump["sample.out"].Shape.SequenceEqual(noise.Shape))
                    problems.Add($"sample.out {dump["sample.out"].ShapeString} must have the shape of sample.noise {noise.ShapeString}");
                if (dump["sample.y"].Shape[0] != noise.Shape[0])
                    problems.Add($"sample.y has {dump["sample.y"].Shape[0]} labels for {noise.Shape[0]} noise samples");
            }
        }
        if (problems.Count > 0)
            throw new InvalidDataException($"{dump.Path}: not a usable dump: {string.Join("; ", problems)}");
    }

    private static IEnumerable<Comparison> CompareForward(DitPipeline s, SafetensorsFile dump, double tolerance)
    {
        var ops = s.Ops;
        var device = ops.Device;
        var xInfo = dump["inputs.x"];
        var shape = xInfo.ShapeToArray();
        if (shape.Length != 4)
            throw new InvalidDataException($"{dump.Path}: 'inputs.x' has shape {xInfo.ShapeString}, expected [B, C, H, W]");
        int batch = shape[0];
        var (t, y) = ForwardConditioning(s, dump, batch);
        using var x = device.FromFloats(dump.ReadFloat32("inputs.x"), ops.ActivationType, shape);
        using var tt = device.FromHost<float>(t, DType.F32, batch);
        using var yy = device.FromHost<int>(y, DType.I32, batch);
        using var output = device.Allocate(ops.ActivationType, batch, s.Config.OutChannels, shape[2], shape[3]);
        using var activations = s.Model.CreateActivations(batch, shape[2], shape[3]);
        var capture = new BlockCapture(dump);
        s.Model.Forward(x, tt, yy, output, activations, capture);
        return BlockResults(s, dump, capture, output, tolerance);
    }

    /// <summary>inputs.t and inputs.y, one entry per batch item, labels checked against the model's classes.</summary>
    private static (float[] T, int[] Y) ForwardConditioning(DitPipeline s, SafetensorsFile dump, int batch)
    {
        float[] t = dump.ReadFloat32("inputs.t");
        long[] y = dump.ReadInt64("inputs.y");
        if (t.Length != batch || y.Length != batch)
            throw new InvalidDataException($"{dump.Path}: inputs.t and inputs.y must have {batch} entries (one per batch item)");
        foreach (long label in y)
            if (label < 0 || label > s.Config.NumClasses)
                throw new InvalidDataException($"{dump.Path}: label {label} in inputs.y is outside [0, {s.Config.NumClasses}]");
        return (t, y.Select(v => (int)v).ToArray());
    }

    /// <summary>Every captured block and the output against the dump; a dump block the model does not have is an error.</summary>
    private static List<Comparison> BlockResults(DitPipeline s, SafetensorsFile dump, BlockCapture capture, Tensor output, double tolerance)
    {
        var results = new List<Comparison>();
        for (int i = 0; i < s.Config.Depth; i++)
            if (capture.Outputs.TryGetValue(i, out var actual))
                results.Add(Comparison.Of(dump, $"outputs.blocks.{i}", actual, tolerance));
        if (dump.Contains("outputs.out"))
            results.Add(Comparison.Of(dump, "outputs.out", output.ToFloatArray(), tolerance));
        foreach (var info in dump.Tensors)
            if (info.Name.StartsWith("outputs.blocks.", StringComparison.Ordinal) && !results.Any(r => r.Name == info.Name))
                throw new InvalidDataException($"{dump.Path}: '{info.Name}' names a block the {s.Config.Depth}-block model does not have");
        return results;
    }

    /// <summary>The forward section of a Latte dump: inputs.x [B, F, C, H, W]; blocks [B, F, T, D] whatever their kind.</summary>
    private static IEnumerable<Comparison> CompareVideoForward(DitPipeline s, LatteModel model, SafetensorsFile dump, double tolerance)
    {
        var ops = s.Ops;
        var shape = dump["inputs.x"].ShapeToArray();
        int batch = shape[0];
        if (shape[1] != model.Frames || shape[2] != s.Config.InChannels)
            throw new InvalidDataException($"{dump.Path}: 'inputs.x' {dump["inputs.x"].ShapeString} is not [B, {model.Frames} frames, {s.Config.InChannels} channels, H, W]");
        var (t, y) = ForwardConditioning(s, dump, batch);
        using var x = ops.Device.FromFloats(dump.ReadFloat32("inputs.x"), ops.ActivationType, shape);
        using var tt = ops.Device.FromHost<float>(t, DType.F32, batch);
        using var yy = ops.Device.FromHost<int>(y, DType.I32, batch);
        using var output = ops.Device.Allocate(ops.ActivationType, batch, shape[1], s.Config.OutChannels, shape[3], shape[4]);
        using var activations = model.CreateActivations(batch, shape[3], shape[4]);
        var capture = new BlockCapture(dump);
        model.Forward(x, tt, yy, output, activations, capture);
        return BlockResults(s, dump, capture, output, tolerance);
    }

    private static Comparison CompareSampling(DitPipeline s, SafetensorsFile dump, double tolerance, Console2 console)
    {
        string sampler = dump.Metadata.GetValueOrDefault("sampler") ?? "ddim";
        string spacing = dump.Metadata.GetValueOrDefault("timestep_spacing") ?? (s.Checkpoint.Layout == DitLayout.Diffusers ? "leading" : "fractional");
        var kind = sampler switch
        {
            "ddim" when spacing == "leading" => SamplerKind.DdimLeading,
            "ddim" => SamplerKind.Ddim,
            "ancestral" or "ddpm" => SamplerKind.Ancestral,
            _ => throw new InvalidDataException($"{dump.Path}: unknown sampler '{sampler}'"),
        };
        int steps = Meta(dump, "steps") ?? throw new InvalidDataException($"{dump.Path}: the sampling section needs 'steps' metadata");
        var noiseInfo = dump["sample.noise"];
        int n = noiseInfo.Shape[0], size = noiseInfo.Shape[^1];
        if (noiseInfo.Rank == 5 && noiseInfo.Shape[1] != s.Config.Frames)
            throw new InvalidDataException($"{dump.Path}: sample.noise {noiseInfo.ShapeString} has {noiseInfo.Shape[1]} frames; the model makes {s.Config.Frames}");
        float[]? stepNoise = dump.Contains("sample.step_noise") ? dump.ReadFloat32("sample.step_noise") : null;
        if (stepNoise is not null && stepNoise.Length != (long)steps * noiseInfo.ElementCount)
            throw new InvalidDataException($"{dump.Path}: sample.step_noise must be [steps, {string.Join(", ", noiseInfo.ShapeToArray())}]");
        var request = new GenerationRequest
        {
            Labels = dump.ReadInt64("sample.y").Select(v => (int)v).ToArray(),
            Steps = steps,
            Sampler = kind,
            Eta = (float)(MetaDouble(dump, "eta") ?? 0),
            GuidanceScale = (float)(MetaDouble(dump, "cfg_scale") ?? 1),
            GuidedChannels = Meta(dump, "cfg_channels"),
            LatentSize = size,
            InitialNoise = dump.ReadFloat32("sample.noise"),
            StepNoise = stepNoise is null ? null : new RecordedStepNoise(stepNoise),
        };
        if (request.Labels.Count != n)
            throw new InvalidDataException($"{dump.Path}: sample.y has {request.Labels.Count} labels for {n} noise samples");
        var result = s.Generate(request, new ProgressBar(console.Err, console.Interactive, "parity sampling"), console.Cancellation);
        return Comparison.Of(dump, "sample.out", result.Latents, tolerance);
    }

    private static int? Meta(SafetensorsFile f, string key) =>
        f.Metadata.TryGetValue(key, out var s) ? int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v
            : throw new InvalidDataException($"{f.Path}: metadata '{key}' = '{s}' is not an integer") : null;

    private static double? MetaDouble(SafetensorsFile f, string key) =>
        f.Metadata.TryGetValue(key, out var s) ? double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v
            : throw new InvalidDataException($"{f.Path}: metadata '{key}' = '{s}' is not a number") : null;

    /// <summary>Copies the outputs of the blocks the dump has references for.</summary>
    private sealed class BlockCapture(SafetensorsFile dump) : IBlockObserver
    {
        public Dictionary<int, float[]> Outputs { get; } = [];

        public void OnBlockOutput(int block, Tensor x)
        {
            if (dump.Contains($"outputs.blocks.{block}"))
                Outputs[block] = x.ToFloatArray();
        }
    }
}

/// <summary>One tensor's agreement with its reference: max absolute error and max|a−b| / max|b|.</summary>
public sealed record Comparison(string Name, string Shape, double MaxAbs, double MaxRel, double Tolerance)
{
    public bool Pass => MaxRel <= Tolerance;

    public static Comparison Of(SafetensorsFile dump, string name, float[] actual, double tolerance)
    {
        var info = dump[name];
        float[] expected = dump.ReadFloat32(name);
        if (expected.Length != actual.Length)
            throw new InvalidDataException($"{dump.Path}: '{name}' has {expected.Length} elements ({info.ShapeString}), this model produced {actual.Length}");
        var (abs, rel) = Errors(actual, expected);
        return new Comparison(name, info.ShapeString, abs, rel, tolerance);
    }

    /// <summary>NaN anywhere gives NaN errors, which fail every tolerance.</summary>
    public static (double MaxAbs, double MaxRel) Errors(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double maxAbs = 0, maxRef = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double d = Math.Abs((double)actual[i] - expected[i]);
            if (double.IsNaN(d) || double.IsInfinity(d))
                return (double.NaN, double.NaN);
            maxAbs = Math.Max(maxAbs, d);
            maxRef = Math.Max(maxRef, Math.Abs((double)expected[i]));
        }
        return (maxAbs, maxRef == 0 ? (maxAbs == 0 ? 0 : double.PositiveInfinity) : maxAbs / maxRef);
    }
}

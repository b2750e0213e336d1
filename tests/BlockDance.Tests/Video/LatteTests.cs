using System.Globalization;
using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Dit.Sampling;
using BlockDance.Kernels;
using BlockDance.Kernels.Cpu;
using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;
using BlockDance.Runtime.Safetensors;
using BlockDance.Tests.Pipeline;
using Xunit;

namespace BlockDance.Tests.Video;

/// <summary>Opens the Latte fixtures (tools/latte_reference.py fixtures) and runs them.</summary>
internal static class Latte
{
    public static string Weights(string name) => Fixtures.Path(name + ".safetensors");
    public static string Dump(string name) => Fixtures.Path(name + ".dump.safetensors");

    /// <summary>Every step's request of a dump's sampling section (labels, sampler, guidance, noise).</summary>
    public static GenerationRequest Request(SafetensorsFile dump)
    {
        var m = dump.Metadata;
        return new GenerationRequest
        {
            Labels = dump.ReadInt64("sample.y").Select(v => (int)v).ToArray(),
            Steps = int.Parse(m["steps"], CultureInfo.InvariantCulture),
            Sampler = m["sampler"] == "ancestral" ? SamplerKind.Ancestral : SamplerKind.Ddim,
            Eta = float.Parse(m["eta"], CultureInfo.InvariantCulture),
            GuidanceScale = float.Parse(m["cfg_scale"], CultureInfo.InvariantCulture),
            LatentSize = dump["sample.noise"].Shape[^1],
            InitialNoise = dump.ReadFloat32("sample.noise"),
            StepNoise = dump.Contains("sample.step_noise") ? new RecordedStepNoise(dump.ReadFloat32("sample.step_noise")) : null,
        };
    }

    /// <summary>Copies every block output.</summary>
    public sealed class Capture : IBlockObserver
    {
        public SortedDictionary<int, float[]> Last { get; } = [];

        public void OnBlockOutput(int block, Tensor x) => Last[block] = x.ToFloatArray();
    }
}

/// <summary>
/// Latte against dumps of the independent PyTorch reference (tools/latte_reference.py, written from the Latte
/// specification) for two differently shaped random-weight models: depth 2 / heads 2 / 3 frames / 3 channels / patch 2,
/// and depth 4 / heads 4 / 5 frames / 4 channels / patch 1. Tolerances as for DiT (ParityTests): 1e-4 per forward
/// tensor, 1e-3 for a sampling run (measured ~5e-7 for both on the CPU device).
/// </summary>
public sealed class LatteParityTests
{
    public static TheoryData<string> Models => new() { "latte_small", "latte_deep" };

    [Theory]
    [MemberData(nameof(Models))]
    public void Forward_matches_pytorch_block_by_block(string name)
    {
        using var dump = SafetensorsFile.Open(Latte.Dump(name));
        Assert.Equal("latte", dump.Metadata["model"]);
        using var checkpoint = DitCheckpoint.Open(Latte.Weights(name));
        using var ops = new CpuOps();
        using var model = LatteModel.Load(checkpoint, ops);
        var shape = dump["inputs.x"].ShapeToArray();   // [B, F, C, H, W]
        int batch = shape[0];
        using var x = ops.Device.FromFloats(dump.ReadFloat32("inputs.x"), DType.F32, shape);
        using var t = ops.Device.FromHost<float>(dump.ReadFloat32("inputs.t"), DType.F32, batch);
        using var y = ops.Device.FromHost<int>(dump.ReadInt64("inputs.y").Select(v => (int)v).ToArray(), DType.I32, batch);
        using var output = ops.Device.Allocate(DType.F32, batch, shape[1], model.Config.OutChannels, shape[3], shape[4]);
        using var a = model.CreateActivations(batch, shape[3], shape[4]);
        var capture = new Latte.Capture();
        model.Forward(x, t, y, output, a, capture);

        Assert.Equal(model.Config.Depth, capture.Last.Count);
        foreach (var (i, block) in capture.Last)
        {
            var (rel, report) = Reference.Compare(block, dump.ReadFloat32($"outputs.blocks.{i}"));
            Assert.True(rel <= 1e-4, $"{name} block {i} ({(LatteModel.IsTemporal(i) ? "temporal" : "spatial")}): {report}");
        }
        var (outRel, outReport) = Reference.Compare(output.ToFloatArray(), dump.ReadFloat32("outputs.out"));
        Assert.True(outRel <= 1e-4, $"{name} output: {outReport}");
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Sampling_with_guidance_matches_pytorch(string name)
    {
        using var dump = SafetensorsFile.Open(Latte.Dump(name));
        using var checkpoint = DitCheckpoint.Open(Latte.Weights(name));
        Assert.Equal(int.Parse(dump.Metadata["cfg_channels"], CultureInfo.InvariantCulture), checkpoint.Config.Numerics.GuidedChannels);
        using var ops = new CpuOps();
        using var model = LatteModel.Load(checkpoint, ops);
        using var run = new SamplingRun(model, Latte.Request(dump));
        var (rel, report) = Reference.Compare(run.Run(), dump.ReadFloat32("sample.out"));
        Assert.True(rel <= 1e-3, $"{name}: {report}");
    }

    [Fact]
    public void A_latte_checkpoint_is_recognised_by_its_temp_embed()
    {
        using var small = DitCheckpoint.Open(Latte.Weights("latte_small"));
        var c = small.Config;
        Assert.Equal((3, 2, 2, 16, 3, 6, 5), (c.Frames, c.Depth, c.Heads, c.HiddenSize, c.InChannels, c.OutChannels, c.NumClasses));
        Assert.Equal(4, c.Numerics.GuidedChannels);   // forward_with_cfg: model_out[:, :, :4]
        using var deep = DitCheckpoint.Open(Latte.Weights("latte_deep"));
        Assert.Equal((5, 4, 4, 1), (deep.Config.Frames, deep.Config.Depth, deep.Config.Heads, deep.Config.PatchSize));

        using var ops = new CpuOps();
        var e = Assert.Throws<CheckpointException>(() => DitModel.Load(small, ops));
        Assert.Contains("Latte", e.Message, StringComparison.Ordinal);
        using var image = DitCheckpoint.Open(Fixtures.TinyOriginal);
        Assert.Equal(0, image.Config.Frames);
        Assert.Contains("not a Latte checkpoint", Assert.Throws<CheckpointException>(() => LatteModel.Load(image, ops)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_cli_parity_command_reads_video_dumps()
    {
        var (code, output, _) = Cli.CliTests.Run("parity", "--weights", Latte.Weights("latte_deep"), "--dump", Latte.Dump("latte_deep"));
        Assert.True(code == 0, output);
        Assert.Contains("outputs.blocks.3", output, StringComparison.Ordinal);
        Assert.Contains("all 6 tensors pass", output, StringComparison.Ordinal);
        // A DiT checkpoint with a Latte dump is refused with a message, not compared.
        var (bad, _, error) = Cli.CliTests.Run("parity", "--weights", Fixtures.TinyOriginal, "--dump", Latte.Dump("latte_deep"));
        Assert.NotEqual(0, bad);
        Assert.Contains("'latte' model", error, StringComparison.Ordinal);
    }
}

/// <summary>
/// Latte on the CUDA code path run by the emulator: parity with PyTorch through the CLI in each storage type (the
/// tolerances of <c>blockdance parity</c> for the type), and a steady state that allocates nothing.
/// </summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class LatteCudaTests
{
    [Theory]
    [InlineData("latte_small", "f32")]
    [InlineData("latte_small", "f16")]
    [InlineData("latte_small", "bf16")]
    [InlineData("latte_deep", "f32")]
    [InlineData("latte_deep", "f16")]
    [InlineData("latte_deep", "bf16")]
    public void Parity_on_cuda_emu(string name, string dtype)
    {
        var (code, output, _) = Cli.CliTests.Run("parity", "--weights", Latte.Weights(name), "--dump", Latte.Dump(name), "--device", "cuda-emu", "--dtype", dtype);
        Assert.True(code == 0, output);
        Assert.Contains("sample.out", output, StringComparison.Ordinal);
        Assert.Contains("tensors pass (cuda-emu", output, StringComparison.Ordinal);
    }

    [Fact]
    public void The_cached_loop_on_cuda_emu_allocates_nothing()
    {
        using var ops = Backends.Open("cuda-emu", 0, DType.F32);
        var emu = ((CudaDevice)ops.Device).Emulator!;
        using var checkpoint = DitCheckpoint.Open(Latte.Weights("latte_deep"));
        using var model = LatteModel.Load(checkpoint, ops);
        using var run = new SamplingRun(model, new GenerationRequest
        {
            Labels = [1, 2], Steps = 20, Sampler = SamplerKind.Ancestral, Cache = CachePolicy.Parse("blockdance:n=2,boundary=2"),
        });
        Assert.Contains('R', run.Plan.Letters);
        while (run.NextStep < 10)
            run.Step();
        var before = emu.Counters;
        long managed = GC.GetAllocatedBytesForCurrentThread();
        while (run.NextStep < 18)
            run.Step();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - managed;
        var after = emu.Counters;
        Assert.Equal(before.LiveAllocations, after.LiveAllocations);
        Assert.Equal(before.LiveBytes, after.LiveBytes);
        Assert.Equal(before.HostCopies, after.HostCopies);
        Assert.True(after.Launches > before.Launches);
        Assert.Equal(0, allocated);
    }
}

/// <summary>Video sampling with the feature cache: the cached tensor is the whole (B·F, T, D) stream at a block boundary of Latte's blocks.</summary>
public sealed class LatteCachingTests : IDisposable
{
    private readonly DitCheckpoint _checkpoint = DitCheckpoint.Open(Latte.Weights("latte_deep"));
    private readonly CpuOps _ops = new();
    private readonly LatteModel _model;

    public LatteCachingTests() => _model = LatteModel.Load(_checkpoint, _ops);

    private float[] Generate(CachePolicy policy, int steps = 10, SamplerKind sampler = SamplerKind.Ddim)
    {
        using var run = new SamplingRun(_model, new GenerationRequest { Labels = [1, 5], Steps = steps, Seed = 3, Cache = policy, Sampler = sampler });
        return run.Run();
    }

    [Fact]
    public void A_disabled_cache_is_bit_identical_to_a_hand_written_video_loop()
    {
        // DDIM on the original respacing, guidance by hand on (2n·F, C', H, W) frames, without SamplingRun.
        int[] labels = [1, 5];
        int n = labels.Length, f = 5, c = 4, s = 4, steps = 10;
        var ddim = new RespacedDiffusion(steps);
        using var x = _ops.Device.Allocate(DType.F32, n * f, c, s, s);
        _ops.RandomNormal(x, 3, 0);
        using var input = _ops.Device.Allocate(DType.F32, 2 * n, f, c, s, s);
        using var output = _ops.Device.Allocate(DType.F32, 2 * n * f, 2 * c, s, s);
        using var guided = _ops.Device.Allocate(DType.F32, n * f, 2 * c, s, s);
        using var y = _ops.Device.FromHost<int>([.. labels, 6, 6], DType.I32, 2 * n);
        using var t = _ops.Device.Allocate(DType.F32, 2 * n);
        using var a = _model.CreateActivations(2 * n, s, s);
        var flat = input.Reshape(2 * n * f, c, s, s);
        for (int k = 0; k < steps; k++)
        {
            int i = steps - 1 - k;
            t.CopyFrom<float>(Enumerable.Repeat((float)ddim.TimestepMap[i], 2 * n).ToArray());
            _ops.Device.Copy(x, flat.Slice(0, n * f));
            _ops.Device.Copy(x, flat.Slice(n * f, n * f));
            _model.Forward(input, t, y, output, a);
            _ops.GuidanceCombine(output, 4, 4f, guided);
            ddim.Ddim(i, 0).Step(_ops, x, guided, null);
        }
        Assert.Equal(x.ToArray<float>(), Generate(CachePolicy.None));
    }

    // Measured on this random-weight model (max|a−b| / max|ref| of the final latents, 20 steps): BlockDance's middle window
    // 1.2e-4 (n=2), 2.7e-4 (n=3 at boundary 1), 4.7e-4 (n=5), 1.8e-4 (ancestral); DeepCache-style reuse from the first,
    // noisiest steps, where random weights change the features most, 8.7e-2 (DDIM) and 1.4e-1 (ancestral). Tolerances
    // are about 4× and 2× those; exact reuse semantics are checked by the test below.
    [Theory]
    [InlineData("blockdance:n=2", SamplerKind.Ddim, 5e-4)]
    [InlineData("blockdance:n=3,boundary=1", SamplerKind.Ddim, 1e-3)]   // boundary after a spatial block
    [InlineData("blockdance:n=5", SamplerKind.Ddim, 2e-3)]
    [InlineData("blockdance:n=2", SamplerKind.Ancestral, 1e-3)]
    [InlineData("deepcache:n=2,boundary=2", SamplerKind.Ddim, 0.2)]
    [InlineData("deepcache:n=2,boundary=2", SamplerKind.Ancestral, 0.3)]
    public void Every_cache_policy_stays_close_to_the_uncached_video(string policy, SamplerKind sampler, double tolerance)
    {
        var full = Generate(CachePolicy.None, 20, sampler);
        var cached = Generate(CachePolicy.Parse(policy), 20, sampler);
        var (rel, report) = Reference.Compare(cached, full);
        Assert.True(rel > 0, "the cached run must actually skip work");
        Assert.True(rel < tolerance, $"{policy}: {report}");
    }

    [Theory]
    [InlineData(1)]   // the cache holds the output of spatial block 0; temp_embed is added after it, by block 1
    [InlineData(2)]   // the output of temporal block 1, rearranged back to frame-major rows
    [InlineData(3)]
    public void A_reuse_step_runs_latte_blocks_from_the_boundary_on_the_cached_stream(int boundary)
    {
        var plan = new StepPlan([StepKind.Full, StepKind.Cache, StepKind.Reuse], boundary, 4);
        using var dir = new Fixtures.TempDir();
        File.WriteAllText(dir.File("p.json"), plan.ToJson());
        using var run = new SamplingRun(_model, new GenerationRequest { Labels = [2, 4], Steps = 3, Seed = 9, Cache = CachePolicy.Parse("plan:" + dir.File("p.json")) });
        Assert.Equal([2 * 2 * 5, 16, 16], run.Cache!.Features.Shape.ToArray());   // (2n·F, T, D): the whole stream, cond and uncond clips
        var capture = new Latte.Capture();
        run.BlockObserver = capture;
        run.Step();
        run.Step();
        var cached = run.Cache.Features.ToArray<float>();
        Assert.Equal(capture.Last[boundary - 1], cached);
        run.Latent.CopyFrom<float>(new float[run.Latent.Count]);   // a Reuse step must not read the latent
        capture.Last.Clear();
        run.Step();
        Assert.Equal(Enumerable.Range(boundary, 4 - boundary), capture.Last.Keys);
        var reuseOutput = run.ModelOutput.ToArray<float>();

        var sampler = new DdimSampler(3, 0);
        using var a = _model.CreateActivations(4, 4, 4);
        using var t = _ops.Device.FromHost<float>(Enumerable.Repeat(sampler.Timestep(2), 4).ToArray(), DType.F32, 4);
        using var y = _ops.Device.FromHost<int>([2, 4, 6, 6], DType.I32, 4);
        using var output = _ops.Device.Allocate(DType.F32, 4 * 5, 8, 4, 4);
        _model.Condition(t, y, a);
        a.Stream.CopyFrom<float>(cached);
        _model.RunBlocks(boundary, 4, a);
        _model.Final(a, output);
        Assert.Equal(output.ToArray<float>(), reuseOutput);
    }

    [Fact]
    public void The_run_report_counts_latte_macs_per_clip()
    {
        // latte_deep: D 16, MLP 64, T 16, F 5, C 4 → C' 8, patch 1. By hand: a block over n tokens costs
        // 6D² + 3nD² + 2n²D + nD² + 2nD·M = 1536 + 3072n + 32n²: spatial F × (n = 16) = 294 400, temporal T × (n = 5) =
        // 283 136; patch embedding F·T·C·D = 5 120; timestep MLP 256·D + D² = 4 352; final F·(2D² + T·D·C') = 12 800.
        var macs = new MacCount(_model.Config, 16);
        Assert.Equal(5_120 + 4_352 + 2 * 294_400 + 2 * 283_136 + 12_800, macs.Forward);
        Assert.Equal(4_352 + 294_400 + 283_136 + 12_800, macs.ReuseForward(2));
        using var run = new SamplingRun(_model, new GenerationRequest { Labels = [1], Steps = 10, Cache = CachePolicy.Parse("blockdance:n=2,boundary=2") });
        Assert.Equal(macs.Forward, run.Report.MacsPerImageFull);
    }

    public void Dispose()
    {
        _model.Dispose();
        _ops.Dispose();
        _checkpoint.Dispose();
    }
}

/// <summary>The CPU sampling loop of a video model allocates no managed or device memory once warm.</summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class LatteAllocationTests
{
    [Theory]
    [InlineData(SamplerKind.Ddim, "blockdance:n=2,boundary=1", 4f)]
    [InlineData(SamplerKind.Ancestral, "none", 1f)]
    public void A_steady_state_video_step_allocates_nothing(SamplerKind sampler, string policy, float guidance)
    {
        using var checkpoint = DitCheckpoint.Open(Latte.Weights("latte_small"));
        using var ops = new CpuOps();
        using var model = LatteModel.Load(checkpoint, ops);
        using var run = new SamplingRun(model, new GenerationRequest
        {
            Labels = [1, 2, 3], Steps = 20, Sampler = sampler, GuidanceScale = guidance, Cache = CachePolicy.Parse(policy),
        });
        for (int k = 0; k < 10; k++)
            run.Step();
        NoAllocation.DuringSteps(run, ops.Device, 10, 18);
    }
}

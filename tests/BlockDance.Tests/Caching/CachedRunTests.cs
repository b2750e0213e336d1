using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Dit.Sampling;
using BlockDance.Kernels.Cpu;
using BlockDance.Runtime;
using Xunit;

namespace BlockDance.Tests.Caching;

/// <summary>The sampling run honours each step's kind exactly, and its cache never outlives the run.</summary>
public sealed class CachedRunTests : IDisposable
{
    private readonly DitCheckpoint _checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
    private readonly CpuOps _ops = new();
    private readonly DitModel _model;

    public CachedRunTests() => _model = DitModel.Load(_checkpoint, _ops);

    private float[] Generate(CachePolicy policy, int steps = 10, int? size = null, int[]? labels = null, ulong seed = 5)
    {
        using var run = new SamplingRun(_model, new GenerationRequest { Labels = labels ?? [1, 6, 10], Steps = steps, Seed = seed, Cache = policy, LatentSize = size });
        return run.Run();
    }

    [Fact]
    public void A_disabled_cache_is_bit_identical_to_a_sampling_loop_without_the_feature()
    {
        // The loop below is written without SamplingRun: DDIM on the original respacing, guidance by hand.
        int[] labels = [1, 6, 10];
        int n = labels.Length, c = 4, s = 8, steps = 10;
        var ddim = new RespacedDiffusion(steps);
        using var x = _ops.Device.Allocate(DType.F32, n, c, s, s);
        _ops.RandomNormal(x, 5, 0);
        using var input = _ops.Device.Allocate(DType.F32, 2 * n, c, s, s);
        using var output = _ops.Device.Allocate(DType.F32, 2 * n, 8, s, s);
        using var guided = _ops.Device.Allocate(DType.F32, n, 8, s, s);
        using var y = _ops.Device.FromHost<int>([.. labels, 10, 10, 10], DType.I32, 2 * n);
        using var t = _ops.Device.Allocate(DType.F32, 2 * n);
        using var a = _model.CreateActivations(2 * n, s, s);
        for (int k = 0; k < steps; k++)
        {
            int i = steps - 1 - k;
            t.CopyFrom<float>(Enumerable.Repeat((float)ddim.TimestepMap[i], 2 * n).ToArray());
            _ops.Device.Copy(x, input.Slice(0, n));
            _ops.Device.Copy(x, input.Slice(n, n));
            _model.Forward(input, t, y, output, a);
            _ops.GuidanceCombine(output, 3, 4f, guided);
            ddim.Ddim(i, 0).Step(_ops, x, guided, null);
        }
        var manual = x.ToArray<float>();
        Assert.Equal(manual, Generate(CachePolicy.None));
        // A plan file with only Full steps (and a boundary) is the same thing.
        using var dir = new Fixtures.TempDir();
        File.WriteAllText(dir.File("full.json"), """{"boundary": 2, "kinds": "FFFFFFFFFF"}""");
        Assert.Equal(manual, Generate(CachePolicy.Parse("plan:" + dir.File("full.json"))));
    }

    [Fact]
    public void A_reuse_step_runs_the_deep_blocks_on_the_cached_tensor_with_its_own_conditioning()
    {
        // Steps: F C R; boundary 2 of 4 blocks.
        var plan = new StepPlan([StepKind.Full, StepKind.Cache, StepKind.Reuse], 2, 4);
        using var dir = new Fixtures.TempDir();
        File.WriteAllText(dir.File("p.json"), plan.ToJson());
        using var run = new SamplingRun(_model, new GenerationRequest { Labels = [2, 7], Steps = 3, Seed = 9, Cache = CachePolicy.Parse("plan:" + dir.File("p.json")) });
        var capture = new Capture();
        run.BlockObserver = capture;
        run.Step();
        run.Step();
        var cached = run.Cache!.Features.ToArray<float>();
        Assert.Equal(capture.Last[1], cached);                    // the Cache step stored block i−1 = 1
        // The latent the Reuse step is given must not matter: only blocks ≥ i run, on the cached tensor.
        run.Latent.CopyFrom<float>(new float[run.Latent.Count]);
        capture.Last.Clear();
        run.Step();
        Assert.Equal([2, 3], capture.Last.Keys.Order());          // the Reuse step computed blocks 2 and 3 only
        var reuseOutput = run.ModelOutput.ToArray<float>();

        // Manual: step 2's conditioning, x = the cached tensor, blocks 2..3, final layer.
        var sampler = new DdimSampler(3, 0);
        using var a = _model.CreateActivations(4, 8, 8);
        using var t = _ops.Device.FromHost<float>(Enumerable.Repeat(sampler.Timestep(2), 4).ToArray(), DType.F32, 4);
        using var y = _ops.Device.FromHost<int>([2, 7, 10, 10], DType.I32, 4);
        using var output = _ops.Device.Allocate(DType.F32, 4, 8, 8, 8);
        _model.Condition(t, y, a);
        a.X.CopyFrom<float>(cached);
        _model.RunBlocks(2, 4, a);
        _model.Final(a, output);
        Assert.Equal(output.ToArray<float>(), reuseOutput);
    }

    [Fact]
    public void Cond_and_uncond_halves_are_cached_together_item_by_item()
    {
        using var run = new SamplingRun(_model, new GenerationRequest { Labels = [3, 4, 5], Steps = 10, Cache = CachePolicy.Parse("blockdance:n=2") });
        Assert.Equal([6, 16, 32], run.Cache!.Features.Shape.ToArray());  // 2n items: [cond…, uncond…]
        Assert.Equal(6L * 16 * 32 * 4, run.Report.CacheBytes);
    }

    [Fact]
    public void Runs_of_different_steps_resolutions_and_batches_in_one_process_match_each_run_alone()
    {
        var policy = CachePolicy.Parse("blockdance:n=2");
        var a1 = Generate(policy, steps: 10);
        var b1 = Generate(policy, steps: 14, size: 12, labels: [0, 9]);
        var c1 = Generate(policy, steps: 10, size: 4, labels: [5]);
        var a2 = Generate(policy, steps: 10);
        var c2 = Generate(policy, steps: 10, size: 4, labels: [5]);
        var b2 = Generate(policy, steps: 14, size: 12, labels: [0, 9]);
        Assert.Equal(a1, a2);
        Assert.Equal(b1, b2);
        Assert.Equal(c1, c2);
        // Each alone, in a fresh model and backend.
        using var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
        using var model = DitModel.Load(checkpoint, _ops);
        using var run = new SamplingRun(model, new GenerationRequest { Labels = [0, 9], Steps = 14, Seed = 5, Cache = policy, LatentSize = 12 });
        Assert.Equal(b1, run.Run());
    }

    [Fact]
    public void Caching_stays_close_to_the_uncached_result_and_differs_from_it()
    {
        var full = Generate(CachePolicy.None, steps: 20);
        var cached = Generate(CachePolicy.Parse("blockdance:n=2"), steps: 20);
        var (rel, report) = Reference.Compare(cached, full);
        Assert.True(rel > 0, "the cached run must actually skip work");
        // Measured ~5e-5 (max abs / max |ref|) on this model; swapped CFG halves or stale features give O(1).
        Assert.True(rel < 1e-3, report);
    }

    [Fact]
    public void Run_report_counts_blocks_and_macs_of_the_plan()
    {
        using var run = new SamplingRun(_model, new GenerationRequest { Labels = [1], Steps = 50, Cache = CachePolicy.Parse("blockdance:n=2") });
        run.Run();
        var r = run.Report;
        Assert.Equal(50 * 4 - 13 * 3, r.Plan.BlocksComputed);   // 13 reuse steps × boundary 3
        var macs = new MacCount(_model.Config, 16);
        Assert.Equal((37 * macs.Forward + 13 * macs.ReuseForward(3)) * 2, r.Macs);
        Assert.Equal(1 - (double)r.Macs / r.MacsWithoutCache, r.MacsSavedFraction, 12);
        Assert.All(r.StepMilliseconds, ms => Assert.True(ms > 0));
        Assert.Contains("\"blocks_skipped\": 39", r.ToJson(), StringComparison.Ordinal);
    }

    [Fact]
    public void Mac_count_of_DiT_XL_2_at_256_is_the_published_118_6_G()
    {
        var xl = DitConfig.XL(2);
        var m = new MacCount(xl, 256);
        // Hand count (issue text): 28 blocks × 12·D²·T = 114.1 G; attention 28 × 2·T²·D ≈ 4.2 G; adaLN, embeddings and final layer small.
        double d = 1152, t = 256;
        double blocks = 28 * 12 * d * d * t, attention = 28 * 2 * t * t * d, adaLN = 28 * 6 * d * d + 2 * d * d;
        double embeddings = t * 4 * 2 * 2 * d + (256 * d + d * d) + t * d * 2 * 2 * 8;
        Assert.Equal(114.1e9, blocks, 0.1e9);
        Assert.Equal(4.2e9, attention, 0.05e9);
        Assert.Equal(blocks + attention + adaLN + embeddings, m.Forward, 1.0);
        Assert.Equal(118.6e9, m.Forward, 0.2e9);
    }

    public void Dispose()
    {
        _model.Dispose();
        _ops.Dispose();
        _checkpoint.Dispose();
    }

    private sealed class Capture : IBlockObserver
    {
        public Dictionary<int, float[]> Last { get; } = [];
        public void OnBlockOutput(int block, Tensor x) => Last[block] = x.ToArray<float>();
    }
}

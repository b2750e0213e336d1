using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Kernels;
using BlockDance.Kernels.Cpu;
using BlockDance.Runtime;
using BlockDance.Tests.Caching;
using BlockDance.Tests.Pipeline;
using Xunit;

namespace BlockDance.Tests.Video;

/// <summary>
/// Adaptive (per-clip) cache policies on the video model, Latte (<c>latte_deep</c>: depth 4, 5 frames of 4×4×4, 6
/// classes): the items of the adaptive executor are clips. Each clip of a batch whose clips follow different plans, or
/// decide differently under BWCache, TeaCache and First-Block-Cache, gets what the same clip gets when sampled alone
/// (the reference is independent of the batched code: a batch-1 run, on the static-plan path for fixed plans, which is
/// parity-tested against PyTorch); BlockDance-Ada with a video decision network (<c>ada_video</c>) end to end; the
/// wrong pairings of networks and models; the report's per-clip MACs; no allocation per step.
/// </summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class LatteAdaptiveTests
{
    private const int Boundary = 2, Depth = 4, PerClip = 5 * 4 * 4 * 4;

    private static FixedPlansPolicy PerClipPolicy(string[] plans) => new(plans, Boundary);

    private static StepPlan Static(string letters) => FixedPlansPolicy.Static(letters, Boundary, Depth);

    private static IOps Open(string device) => device == "cpu" ? new CpuOps() : Backends.Open(device, 0, DType.F32);

    private static float[] Noise(int clips)
    {
        var rng = new Random(17);
        return Enumerable.Range(0, clips * PerClip).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    }

    private static float[] Clip(float[] x, int i) => x[(i * PerClip)..((i + 1) * PerClip)];

    private static (float[] Latent, RunReport Report) Generate(IOps ops, CachePolicy policy, int[] labels, float[] noise, float guidance = 4f,
        int steps = 8, string model = "latte_deep")
    {
        using var checkpoint = DitCheckpoint.Open(Latte.Weights(model));
        using var latte = LatteModel.Load(checkpoint, ops);
        using var run = new SamplingRun(latte, new GenerationRequest
        {
            Labels = labels, Steps = steps, Seed = 3, Cache = policy, InitialNoise = noise, GuidanceScale = guidance,
        });
        return (run.Run(), run.Report);
    }

    // ---- per-clip Cache/Reuse/Full plans (BlockDance-Ada's execution)

    [Theory]
    [InlineData("cpu", 4f)]
    [InlineData("cpu", 1f)]
    [InlineData("cuda-emu", 4f)]
    public void Each_clip_of_a_mixed_batch_is_the_clip_alone_on_its_static_plan(string device, float guidance)
    {
        // BlockDance-2, BlockDance-3 and an irregular plan whose first reuse follows a cache (and a Full between reuses).
        string[] plans = ["FFCRCRCF", "FFCRRCRR", "FCRFRCRF"];
        int[] labels = [1, 4, 2];
        var noise = Noise(labels.Length);
        using var ops = Open(device);
        var (batched, report) = Generate(ops, PerClipPolicy(plans), labels, noise, guidance);
        Assert.Equal(plans, report.ImagePlans.Select(p => p.Letters).ToArray());
        Assert.True(report.PlansDiffer);
        int halves = guidance > 1 ? 2 : 1;
        for (int i = 0; i < labels.Length; i++)
        {
            var (alone, single) = Generate(ops, new FixedPlan(Static(plans[i])), [labels[i]], Clip(noise, i), guidance);
            Assert.True(Clip(batched, i).SequenceEqual(alone), $"clip {i} ({plans[i]}) differs from the clip alone: {Reference.Compare(Clip(batched, i), alone).Report}");
            Assert.Equal(single.Macs, report.ImageMacs(i) * halves);   // per clip: F frames' worth
        }
        // The neighbours' plans do not matter: clip 0 keeps its plan, the others swap theirs.
        var (swapped, _) = Generate(ops, PerClipPolicy([plans[0], plans[2], plans[1]]), labels, noise, guidance);
        Assert.Equal(Clip(batched, 0), Clip(swapped, 0));
        Assert.True(report.ImageMacs(0) > report.ImageMacs(1), "BlockDance-2 reuses less than BlockDance-3");
    }

    // ---- BWCache, TeaCache, First-Block-Cache: per-clip decisions

    // Thresholds at which the clips of this random-weight model decide differently (the gathered path runs).
    public static TheoryData<string, string> Adaptive => new()
    {
        { "cpu", "bwcache:delta=1.0,refresh=2" },
        { "cpu", "teacache:threshold=0.3" },
        { "cpu", "fbcache:threshold=0.75" },
        { "cuda-emu", "bwcache:delta=1.0,refresh=2" },
        { "cuda-emu", "teacache:threshold=0.3" },
        { "cuda-emu", "fbcache:threshold=0.75" },
    };

    [Theory]
    [MemberData(nameof(Adaptive))]
    public void Each_clip_decides_and_computes_what_it_does_alone(string device, string policy)
    {
        int[] labels = [1, 4, 2];
        var noise = Noise(labels.Length);
        using var ops = Open(device);
        var (batched, report) = Generate(ops, CachePolicy.Parse(policy), labels, noise, steps: 12);
        var plans = report.ImagePlans.Select(p => p.Letters).ToArray();
        Assert.True(report.PlansDiffer, $"{policy}: the clips must decide differently: {string.Join(" ", plans)}");
        Assert.Contains(plans, p => p.Contains('S'));
        for (int i = 0; i < labels.Length; i++)
        {
            var (alone, single) = Generate(ops, CachePolicy.Parse(policy), [labels[i]], Clip(noise, i), steps: 12);
            Assert.Equal(single.Plan.Letters, plans[i]);
            for (int k = 0; k < 12; k++)
                Assert.Equal(single.Indicator(0)[k], report.Indicator(i)[k]);
            Assert.True(Clip(batched, i).SequenceEqual(alone), $"clip {i} ({plans[i]}) differs from the clip alone: {Reference.Compare(Clip(batched, i), alone).Report}");
            Assert.Equal(single.Macs, report.ImageMacs(i) * 2);
        }
    }

    [Theory]
    [InlineData("bwcache:delta=0")]
    [InlineData("teacache:threshold=0")]
    [InlineData("fbcache:threshold=0")]
    public void A_disabled_adaptive_policy_on_the_video_model_is_bit_identical_to_no_cache(string policy)
    {
        using var ops = new CpuOps();
        var noise = Noise(2);
        var (none, _) = Generate(ops, CachePolicy.None, [1, 5], noise);
        var (adaptive, report) = Generate(ops, CachePolicy.Parse(policy), [1, 5], noise);
        Assert.Equal(none, adaptive);
        Assert.True(float.IsFinite(report.Indicator(1)[2]), "the indicator is measured per clip all the same");
    }

    [Fact]
    public void A_skip_step_of_a_clip_counts_its_frames_macs()
    {
        // latte_deep by hand (see LatteCachingTests): conditioning 4 352, final layer 12 800, patch embedding of 5
        // frames 5 120, spatial block 0 294 400. First-Block-Cache's skip runs the embedding and block 0 and adds the
        // stored residual of blocks 1-3; BWCache's skip runs the conditioning and the final layer only.
        using var ops = new CpuOps();
        var (_, fb) = Generate(ops, CachePolicy.Parse("fbcache:threshold=0.75"), [1], Noise(1), steps: 12);
        Assert.Equal(4_352 + 12_800 + 5_120 + 294_400, fb.StepMacs(StepKind.Skip));
        var (_, bw) = Generate(ops, CachePolicy.Parse("bwcache:delta=1.0,refresh=2"), [1], Noise(1), steps: 12);
        Assert.Equal(4_352 + 12_800, bw.StepMacs(StepKind.Skip));
    }

    [Theory]
    [InlineData("cpu", "bwcache:delta=1.0,refresh=2")]
    [InlineData("cpu", "teacache:threshold=0.3")]
    [InlineData("cpu", "fbcache:threshold=0.75")]
    [InlineData("cpu", "per-clip")]
    [InlineData("cuda-emu", "fbcache:threshold=0.75")]
    [InlineData("cuda-emu", "per-clip")]
    public void A_steady_state_adaptive_video_step_allocates_nothing(string device, string policy)
    {
        using var checkpoint = DitCheckpoint.Open(Latte.Weights("latte_deep"));
        using var ops = Open(device);
        using var model = LatteModel.Load(checkpoint, ops);
        var cache = policy == "per-clip" ? PerClipPolicy(["FFCRCRCRCRCRCRCF", "FFCRRCRRCRRCRRCF", "FFCCCCCCCCCCCCCF"]) : CachePolicy.Parse(policy);
        using var run = new SamplingRun(model, new GenerationRequest { Labels = [1, 4, 2], Steps = 16, Seed = 5, Cache = cache });
        for (int k = 0; k < 6; k++)
            run.Step();
        NoAllocation.DuringSteps(run, ops.Device, 6, 16);
        var plans = run.Report.ImagePlans.Select(p => p.Letters).ToArray();
        // BWCache's clips happen to decide alike on these seeds (its gathered path is covered above); the others mix.
        Assert.True(run.Report.PlansDiffer || policy.StartsWith("bwcache", StringComparison.Ordinal), string.Join(" ", plans));
        Assert.Contains(policy == "per-clip" ? 'R' : 'S', string.Concat(plans.Select(p => p[6..])));
    }

    // ---- BlockDance-Ada with a video decision network (ada_video: F = 5, C = 4, 4×4, 6 classes; S = 10, ρ·S = 4,
    // boundary 2, max_reuse 3: fits latte_deep)

    private static string VideoNet => Fixtures.Path("ada_video.safetensors");

    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda-emu")]
    public void Ada_plans_each_clip_with_the_video_network_and_runs_each_plan_exactly(string device)
    {
        int[] labels = [0, 3, 5, 1, 4];
        var noise = Noise(labels.Length);
        using var ops = Open(device);
        var (batched, report) = Generate(ops, CachePolicy.Parse("ada:weights=" + VideoNet), labels, noise, steps: 10);
        var plans = report.ImagePlans.Select(p => p.Letters).ToArray();
        Assert.Equal(labels.Length, plans.Length);
        Assert.All(plans, p => Assert.StartsWith("FFFC", p, StringComparison.Ordinal));
        Assert.All(plans, p => Assert.DoesNotContain("RRRR", p, StringComparison.Ordinal));   // max_reuse 3
        Assert.Contains(plans, p => p.Contains('R'));
        Assert.True(plans.Distinct().Count() > 1, "the clips must get different plans: " + string.Join(" ", plans));
        Assert.Contains("image_plans", report.ToJson(), StringComparison.Ordinal);
        for (int i = 0; i < labels.Length; i++)
        {
            var plan = Static(plans[i]);
            var (alone, single) = Generate(ops, new FixedPlan(plan), [labels[i]], Clip(noise, i), steps: 10);
            Assert.True(Clip(batched, i).SequenceEqual(alone), $"clip {i} ({plans[i]}) differs from its static plan alone");
            Assert.Equal(single.Macs, report.ImageMacs(i) * 2);
        }
    }

    [Fact]
    public void Ada_on_the_video_model_allocates_nothing_after_its_decision()
    {
        using var checkpoint = DitCheckpoint.Open(Latte.Weights("latte_deep"));
        using var ops = new CpuOps();
        using var model = LatteModel.Load(checkpoint, ops);
        using var run = new SamplingRun(model, new GenerationRequest { Labels = [0, 3, 5, 1, 4], Steps = 10, Seed = 4, Cache = CachePolicy.Parse("ada:weights=" + VideoNet) });
        for (int k = 0; k < 5; k++)
            run.Step();
        NoAllocation.DuringSteps(run, ops.Device, 5, 10);
    }

    [Theory]
    [InlineData("latte_deep", "ada_small", "an image network")]                // an image network asked to plan clips
    [InlineData("latte_small", "ada_video", "num_frames = 5")]                 // a video network for clips of another length
    [InlineData("dit", "ada_video", "the run's model is an image model")]      // a video network asked to plan images
    public void A_network_that_does_not_fit_the_models_frames_is_refused_naming_the_field(string model, string net, string message)
    {
        using var ops = new CpuOps();
        var policy = CachePolicy.Parse($"ada:weights={Fixtures.Path(net + ".safetensors")}");
        InvalidRequestException e;
        if (model == "dit")
        {
            using var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
            using var dit = DitModel.Load(checkpoint, ops);
            e = Assert.Throws<InvalidRequestException>(() => new SamplingRun(dit, new GenerationRequest { Labels = [1], Steps = 10, Cache = policy }));
        }
        else
        {
            using var checkpoint = DitCheckpoint.Open(Latte.Weights(model));
            using var latte = LatteModel.Load(checkpoint, ops);
            e = Assert.Throws<InvalidRequestException>(() => new SamplingRun(latte, new GenerationRequest { Labels = [1], Steps = 10, Cache = policy }));
        }
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.Contains("num_frames", e.Message, StringComparison.Ordinal);
        Assert.Equal("num_frames", e.Parameter);
    }

    [Fact]
    public void Without_weights_ada_takes_the_bundled_network_of_the_models_kind()
    {
        var ada = new AdaPolicy();
        Assert.EndsWith(AdaPolicy.BundledWeights, ada.ResolveWeights(1), StringComparison.Ordinal);   // committed
        Assert.Equal(1, AdaConfig.Read(ada.ResolveWeights(1)).Frames);   // an image network: no num_frames in its file
        string video = DitPipeline.FindModelsFile(AdaPolicy.BundledVideoWeights, out _)
            ?? throw new FileNotFoundException($"models/{AdaPolicy.BundledVideoWeights} is missing from the repository");
        Assert.Equal(video, ada.ResolveWeights(8));
        Assert.Equal(8, AdaConfig.Read(video).Frames);   // a video network for the bundled model's 8-frame clips
    }
}

using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Kernels;
using BlockDance.Kernels.Cpu;
using BlockDance.Runtime;
using BlockDance.Tests.Pipeline;
using Xunit;

namespace BlockDance.Tests.Caching;

/// <summary>
/// Per-image Cache/Reuse/Full plans executed in one batch (BlockDance-Ada's execution): every image's result is
/// bitwise the result of the same image alone on the static-plan path (independent code: the run's plain
/// Full/Cache/Reuse forward), whatever the plans of the other images, on the CPU and cuda-emu, with and without
/// guidance; MACs per image; and the <c>ada</c> policy end to end with a fixture network on the tiny DiT.
/// </summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class AdaRunTests
{
    private const int Boundary = 2;

    private static FixedPlansPolicy PerImagePolicy(string[] plans) => new(plans, Boundary);

    private static StepPlan Static(string letters) => FixedPlansPolicy.Static(letters, Boundary, 4);

    private static (float[] Latent, RunReport Report) Generate(IOps ops, CachePolicy policy, int[] labels, float[] noise, float guidance, int steps = 8)
    {
        using var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
        using var model = DitModel.Load(checkpoint, ops);
        using var run = new SamplingRun(model, new GenerationRequest
        {
            Labels = labels, Steps = steps, Seed = 3, Cache = policy, InitialNoise = noise, GuidanceScale = guidance,
        });
        return (run.Run(), run.Report);
    }

    private static float[] Noise(int n)
    {
        var rng = new Random(11);
        return Enumerable.Range(0, n * 4 * 8 * 8).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    }

    private static IOps Open(string device) => device == "cpu" ? new CpuOps() : Backends.Open(device, 0, DType.F32);

    [Theory]
    [InlineData("cpu", 4f)]
    [InlineData("cpu", 1f)]
    [InlineData("cuda-emu", 4f)]
    public void Each_image_of_a_mixed_batch_is_bitwise_the_image_alone_whatever_the_other_plans(string device, float guidance)
    {
        string[] plans = ["FFCRRCRC", "FFCCRRRC", "FFFFFFFF", "FFCRCRCR"];
        int[] labels = [1, 6, 3, 9];
        const int per = 4 * 8 * 8;
        var noise = Noise(labels.Length);
        using var ops = Open(device);
        var (batched, report) = Generate(ops, PerImagePolicy(plans), labels, noise, guidance);
        Assert.Equal(plans, report.ImagePlans.Select(p => p.Letters).ToArray());
        Assert.True(report.PlansDiffer);
        // The same images with other plans for their neighbours: image 0 keeps its plan, the others swap theirs.
        var (shuffled, _) = Generate(ops, PerImagePolicy([plans[0], plans[3], plans[1], plans[2]]), labels, noise, guidance);
        Assert.Equal(batched.AsSpan(0, per).ToArray(), shuffled.AsSpan(0, per).ToArray());
        int halves = guidance > 1 ? 2 : 1;
        for (int i = 0; i < labels.Length; i++)
        {
            var (alone, single) = Generate(ops, new FixedPlan(Static(plans[i])), [labels[i]], noise[(i * per)..((i + 1) * per)], guidance);
            Assert.True(batched.AsSpan(i * per, per).SequenceEqual(alone), $"image {i} ({plans[i]}) differs from the image alone");
            Assert.Equal(single.Macs, report.ImageMacs(i) * halves);
        }
        Assert.True(report.ImageMacs(2) > report.ImageMacs(0), "a Full plan costs more than a plan with reuses");
    }

    [Fact]
    public void Reuse_before_an_images_own_cache_step_is_refused()
    {
        using var ops = new CpuOps();
        var e = Assert.Throws<InvalidOperationException>(() =>
            Generate(ops, PerImagePolicy(["FFCRFFFF", "FFFRFFFF"]), [1, 2], Noise(2), 4f));
        Assert.Contains("image 1", e.Message, StringComparison.Ordinal);
    }

    // ---- the ada policy with the fixture network ada_small (S = 10, ρ·S = 4, max_reuse 2, boundary 3; 8×8×4, 10 classes)

    private static string AdaWeights => Fixtures.Path("ada_small.safetensors");

    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda-emu")]
    public void Ada_plans_each_image_from_the_network_and_runs_them_exactly(string device)
    {
        int[] labels = [0, 3, 5, 7, 9, 2];
        const int per = 4 * 8 * 8;
        var noise = Noise(labels.Length);
        using var ops = Open(device);
        var (batched, report) = Generate(ops, CachePolicy.Parse("ada:weights=" + AdaWeights), labels, noise, 4f, steps: 10);
        var plans = report.ImagePlans.Select(p => p.Letters).ToArray();

        // The network's own view: the latent after step ρ·S − 1 = 3 from a static FFFC run, then the greedy rule.
        using var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
        using var model = DitModel.Load(checkpoint, ops);
        var first = new StepPlan([.. Enumerable.Repeat(StepKind.Full, 3), StepKind.Cache, .. Enumerable.Repeat(StepKind.Full, 6)], 3, 4);
        using var run = new SamplingRun(model, new GenerationRequest { Labels = labels, Steps = 10, Seed = 3, Cache = new FixedPlan(first), InitialNoise = noise });
        for (int k = 0; k < 4; k++)
            run.Step();
        using var net = AdaDecisionNet.Load(AdaWeights, ops);
        using var a = net.CreateActivations(labels.Length);
        using var y = ops.Device.Allocate(DType.I32, labels.Length);
        y.CopyFrom<int>(labels);
        var probs = new float[labels.Length * 6];
        net.Probabilities(run.Latent, y, a, probs);
        var kinds = new StepKind[10];
        for (int i = 0; i < labels.Length; i++)
        {
            AdaDecisionNet.GreedyPlan(probs.AsSpan(i * 6, 6), 4, 0.5, 2, kinds);
            Assert.Equal(new string(kinds.Select(StepPlan.Letter).ToArray()), plans[i]);
            Assert.StartsWith("FFFC", plans[i], StringComparison.Ordinal);
            Assert.DoesNotContain("RRR", plans[i], StringComparison.Ordinal);
        }
        Assert.True(plans.Distinct().Count() > 1, "the images must get different plans: " + string.Join(" ", plans));
        Assert.Contains("image_plans", report.ToJson(), StringComparison.Ordinal);
        for (int i = 0; i < labels.Length; i++)
        {
            var plan = new StepPlan(plans[i].Select(c => c switch { 'C' => StepKind.Cache, 'R' => StepKind.Reuse, _ => StepKind.Full }).ToArray(), 3, 4);
            var (alone, _) = Generate(ops, new FixedPlan(plan), [labels[i]], noise[(i * per)..((i + 1) * per)], 4f, steps: 10);
            Assert.True(batched.AsSpan(i * per, per).SequenceEqual(alone), $"image {i} ({plans[i]}) differs from its static plan alone");
        }
    }

    [Fact]
    public void Ada_steps_after_the_decision_allocate_no_managed_or_device_memory()
    {
        using var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
        using var ops = new CpuOps();
        using var model = DitModel.Load(checkpoint, ops);
        using var run = new SamplingRun(model, new GenerationRequest { Labels = [0, 3, 5, 7, 9, 2], Steps = 10, Seed = 4, Cache = CachePolicy.Parse("ada:weights=" + AdaWeights) });
        for (int k = 0; k < 6; k++)   // the network's forward at step 3 (its ops' first calls), then the first mixed steps
            run.Step();
        NoAllocation.DuringSteps(run, ops.Device, 6, 10);
        Assert.True(run.Report.PlansDiffer, string.Join(" ", run.Report.ImagePlans.Select(p => p.Letters)));

        // The network itself: a second forward at the same batch allocates nothing.
        using var net = AdaDecisionNet.Load(AdaWeights, ops);
        using var a = net.CreateActivations(6);
        using var y = ops.Device.Allocate(DType.I32, 6);
        y.CopyFrom<int>([0, 3, 5, 7, 9, 2]);
        var probs = new float[6 * 6];
        net.Probabilities(run.Latent, y, a, probs);
        NoAllocation.During(ops.Device, () => net.Probabilities(run.Latent, y, a, probs));
    }

    [Theory]
    [InlineData("maxreuse=0", "FFFCCCCCCC")]
    [InlineData("threshold=0", "FFFCCCCCCC")]
    public void Parameters_override_the_networks_threshold_and_reuse_bound(string args, string expected)
    {
        using var ops = new CpuOps();
        var (_, report) = Generate(ops, CachePolicy.Parse($"ada:weights={AdaWeights},{args}"), [1, 4, 8], Noise(3), 4f, steps: 10);
        Assert.All(report.ImagePlans, p => Assert.Equal(expected, p.Letters));
    }

    [Theory]
    [InlineData("", 12, "steps = 10")]
    [InlineData(",rho=0.5", 10, "rho = 0.5")]
    public void A_run_that_does_not_fit_the_network_is_refused_naming_the_field(string args, int steps, string message)
    {
        using var ops = new CpuOps();
        var e = Assert.Throws<InvalidRequestException>(() => Generate(ops, CachePolicy.Parse($"ada:weights={AdaWeights}{args}"), [1], Noise(1), 4f, steps));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_or_wrong_network_file_is_refused_clearly()
    {
        using var ops = new CpuOps();
        var missing = Assert.Throws<InvalidRequestException>(() => Generate(ops, CachePolicy.Parse("ada:weights=/nonexistent/ada.safetensors"), [1], Noise(1), 4f, 10));
        Assert.Contains("/nonexistent/ada.safetensors", missing.Message, StringComparison.Ordinal);
        var dit = Assert.Throws<CheckpointException>(() => Generate(ops, CachePolicy.Parse("ada:weights=" + Fixtures.TinyOriginal), [1], Noise(1), 4f, 10));
        Assert.Contains("blockdance-ada", dit.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_policy_parses_round_trips_and_has_no_plan_ahead_of_the_run()
    {
        var p = CachePolicy.Parse("ada:weights=w.safetensors,rho=0.4,threshold=0.6,maxreuse=2");
        var ada = Assert.IsType<AdaPolicy>(p);
        Assert.Equal(("w.safetensors", 0.4, 0.6, 2), (ada.Weights, ada.Rho, ada.ThresholdOverride, ada.MaxReuseOverride));
        Assert.Equal(p.Spec, CachePolicy.Parse(p.Spec).Spec);
        Assert.Equal("ada", CachePolicy.Parse("ada").Spec);
        Assert.True(p.IsDynamic);
        Assert.Contains("run time", Assert.Throws<PlanException>(() => p.Plan(50, 12)).Message, StringComparison.Ordinal);
        Assert.Contains("unknown parameter 'n'", Assert.Throws<PlanException>(() => CachePolicy.Parse("ada:n=2")).Message, StringComparison.Ordinal);
        Assert.Contains("rho", Assert.Throws<PlanException>(() => CachePolicy.Parse("ada:rho=1.5")).Message, StringComparison.Ordinal);
    }
}

using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Dit.Sampling;
using BlockDance.Kernels.Cpu;
using BlockDance.Runtime;
using Xunit;

namespace BlockDance.Tests.Caching;

/// <summary>
/// Adaptive policies in a sampling run on the tiny model: disabled they are bit-identical to no cache; enabled, each
/// image's result and indicator equal an independent per-image replay written with host arrays; batch 1 and batch 64
/// give every image the same decisions.
/// </summary>
public sealed class AdaptiveRunTests : IDisposable
{
    private const int Steps = 12;
    private readonly DitCheckpoint _checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
    private readonly CpuOps _ops = new();
    private readonly DitModel _model;

    public AdaptiveRunTests() => _model = DitModel.Load(_checkpoint, _ops);

    // Thresholds that make the images of the tiny random-weight model decide differently (the gathered path runs): its
    // features change far more per step than a trained model's (relative L1 0.5-1.4 between steps).
    public static TheoryData<string> Enabled => new()
    {
        "bwcache:delta=1.3,refresh=2",
        "teacache:threshold=0.45",
        "fbcache:threshold=0.8",
    };

    private (float[] Latent, RunReport Report) Generate(string policy, int[] labels, float guidance = 4f, float[]? noise = null)
    {
        using var run = new SamplingRun(_model, new GenerationRequest
        {
            Labels = labels, Steps = Steps, Seed = 5, Cache = CachePolicy.Parse(policy), GuidanceScale = guidance, InitialNoise = noise,
        });
        return (run.Run(), run.Report);
    }

    [Theory]
    [InlineData("bwcache:delta=0", 4f)]
    [InlineData("bwcache:delta=0,blocks=1-2", 1f)]
    [InlineData("teacache:threshold=0", 4f)]
    [InlineData("teacache:threshold=0", 1f)]
    [InlineData("fbcache:threshold=0", 4f)]
    [InlineData("fbcache:threshold=0", 1f)]
    public void A_disabled_adaptive_policy_is_bit_identical_to_no_cache(string policy, float guidance)
    {
        var (none, _) = Generate("none", [1, 6, 10], guidance);
        var (adaptive, report) = Generate(policy, [1, 6, 10], guidance);
        Assert.Equal(none, adaptive);
        Assert.DoesNotContain('S', report.Plan.Letters);
        Assert.True(report.IsDynamic);
        // The indicator was measured all the same (from step 1 on).
        Assert.True(float.IsFinite(report.Indicator(2)[1]));
    }

    [Theory]
    [MemberData(nameof(Enabled))]
    public void Each_image_equals_an_independent_replay_of_its_plan_and_its_indicator_is_the_host_computed_one(string policy)
    {
        int[] labels = [1, 6, 3];
        var (latent, report) = Generate(policy, labels);
        Assert.True(report.PlansDiffer, "the test needs images with different plans: " + string.Join(" ", report.ImagePlans.Select(p => p.Letters)));
        Assert.Contains(report.ImagePlans, p => p.Count(StepKind.Skip) > 0);
        int per = latent.Length / labels.Length;
        for (int i = 0; i < labels.Length; i++)
        {
            var (expected, indicator) = Replay(policy, labels[i], i, labels.Length, report.ImagePlans[i]);
            var (rel, text) = Reference.Compare(latent.AsSpan(i * per, per), expected);
            Assert.True(rel <= 1e-6, $"image {i} ({report.ImagePlans[i].Letters}): {text}");
            for (int k = 0; k < Steps; k++)
            {
                float got = report.Indicator(i)[k];
                if (double.IsNaN(indicator[k]))
                    Assert.True(float.IsNaN(got), $"image {i} step {k}: indicator {got}, none expected");
                else
                    Assert.True(Math.Abs(got - indicator[k]) <= 1e-5 * indicator[k] + 1e-7, $"image {i} step {k}: indicator {got}, host {indicator[k]}");
            }
        }
    }

    /// <summary>
    /// Image <paramref name="index"/> of a batch of <paramref name="images"/>, alone (model batch 2: cond, uncond), through
    /// the plan it executed, with every stored tensor a host array and the indicator summed on the host in double.
    /// </summary>
    private (float[] Latent, double[] Indicator) Replay(string policy, int label, int index, int images, StepPlan plan)
    {
        var cfg = _model.Config;
        int c = cfg.InChannels, s = cfg.InputSize, depth = cfg.Depth;
        var sampler = new DdimSampler(Steps, 0);
        using var all = _ops.Device.Allocate(DType.F32, images, c, s, s);
        _ops.RandomNormal(all, 5, 0);   // the run's starting noise; this image's part
        using var x = _ops.Device.FromHost<float>(all.ToArray<float>().AsSpan(index * c * s * s, c * s * s), DType.F32, 1, c, s, s);
        using var input = _ops.Device.Allocate(DType.F32, 2, c, s, s);
        using var output = _ops.Device.Allocate(DType.F32, 2, cfg.OutChannels, s, s);
        using var guided = _ops.Device.Allocate(DType.F32, 1, cfg.OutChannels, s, s);
        using var y = _ops.Device.FromHost<int>([label, cfg.NullClass], DType.I32, 2);
        using var t = _ops.Device.Allocate(DType.F32, 2);
        using var a = _model.CreateActivations(2, s, s);
        var indicator = new double[Steps];
        float[]? store = null, probeRef = null, headRef = null;
        float[][]? prev = null;
        string name = policy[..policy.IndexOf(':')];
        for (int k = 0; k < Steps; k++)
        {
            indicator[k] = double.NaN;
            var kind = plan[k];
            t.CopyFrom<float>([sampler.Timestep(k), sampler.Timestep(k)]);
            _ops.Device.Copy(x, input.Slice(0, 1));
            _ops.Device.Copy(x, input.Slice(1, 1));
            _model.Condition(t, y, a);
            switch (name)
            {
                case "teacache":
                {
                    _model.EmbedTokens(input, a);
                    var xin = a.X.ToArray<float>();
                    _model.Blocks[0].ModulatedInput(_ops, a);
                    var m = a.Normed.ToArray<float>();
                    if (probeRef is not null)
                        indicator[k] = MaxOfHalves(m, probeRef);
                    probeRef = m;
                    if (kind == StepKind.Skip)
                    {
                        a.X.CopyFrom<float>(xin.Zip(store!, (p, q) => p + q).ToArray());
                    }
                    else
                    {
                        _model.RunBlocks(0, depth, a);
                        if (kind == StepKind.Cache)
                            store = a.X.ToArray<float>().Zip(xin, (p, q) => p - q).ToArray();
                    }
                    break;
                }
                case "fbcache":
                {
                    _model.EmbedTokens(input, a);
                    var xin = a.X.ToArray<float>();
                    _model.RunBlocks(0, 1, a);
                    var head = a.X.ToArray<float>();
                    var r = head.Zip(xin, (p, q) => p - q).ToArray();
                    if (headRef is not null)
                        indicator[k] = MaxOfHalves(r, headRef);
                    if (kind == StepKind.Skip)
                    {
                        a.X.CopyFrom<float>(head.Zip(store!, (p, q) => p + q).ToArray());
                    }
                    else
                    {
                        _model.RunBlocks(1, depth, a);
                        store = a.X.ToArray<float>().Zip(head, (p, q) => p - q).ToArray();
                        headRef = r;
                    }
                    break;
                }
                default:   // bwcache, every block
                {
                    if (kind == StepKind.Skip)
                    {
                        a.X.CopyFrom<float>(store!);
                        break;
                    }
                    _model.EmbedTokens(input, a);
                    var outs = new float[depth][];
                    for (int b = 0; b < depth; b++)
                    {
                        _model.RunBlocks(b, b + 1, a);
                        outs[b] = a.X.ToArray<float>();
                    }
                    if (kind == StepKind.Cache)
                    {
                        if (prev is not null)
                        {
                            // Mean over blocks of each half, then the larger half.
                            int half = outs[0].Length / 2;
                            double cond = 0, uncond = 0;
                            for (int b = 0; b < depth; b++)
                            {
                                cond += RelL1(outs[b].AsSpan(0, half), prev[b].AsSpan(0, half)) / depth;
                                uncond += RelL1(outs[b].AsSpan(half), prev[b].AsSpan(half)) / depth;
                            }
                            indicator[k] = Math.Max(cond, uncond);
                        }
                        prev = outs;
                        store = outs[depth - 1];
                    }
                    break;
                }
            }
            _model.Final(a, output);
            _ops.GuidanceCombine(output, 3, 4f, guided);
            sampler.Step(_ops, k, x, guided, null);
        }
        return (x.ToArray<float>(), indicator);
    }

    private static double RelL1(ReadOnlySpan<float> x, ReadOnlySpan<float> r)
    {
        double diff = 0, norm = 0;
        for (int j = 0; j < x.Length; j++)
        {
            diff += Math.Abs((double)x[j] - r[j]);
            norm += Math.Abs((double)r[j]);
        }
        return diff / norm;
    }

    private static double MaxOfHalves(float[] x, float[] r)
    {
        int half = x.Length / 2;
        return Math.Max(RelL1(x.AsSpan(0, half), r.AsSpan(0, half)), RelL1(x.AsSpan(half), r.AsSpan(half)));
    }

    [Theory]
    [MemberData(nameof(Enabled))]
    public void Batch_1_and_batch_64_give_every_image_the_same_decisions(string policy)
    {
        const int n = 64;
        int[] labels = Enumerable.Range(0, n).Select(i => i % 10).ToArray();
        var cfg = _model.Config;
        int per = cfg.InChannels * cfg.InputSize * cfg.InputSize;
        using var noise = _ops.Device.Allocate(DType.F32, n, cfg.InChannels, cfg.InputSize, cfg.InputSize);
        _ops.RandomNormal(noise, 77, 0);
        var all = noise.ToArray<float>();
        var (batched, report) = Generate(policy, labels, noise: all);
        Assert.True(report.PlansDiffer, "the batch must mix plans: " + string.Join(" ", report.ImagePlans.Select(p => p.Letters)));
        for (int i = 0; i < n; i++)
        {
            var (alone, single) = Generate(policy, [labels[i]], noise: all[(i * per)..((i + 1) * per)]);
            Assert.Equal(single.Plan.Letters, report.ImagePlans[i].Letters);
            var (rel, text) = Reference.Compare(batched.AsSpan(i * per, per), alone);
            Assert.True(rel <= 1e-6, $"image {i}: {text}");
        }
    }

    [Fact]
    public void The_report_keeps_per_image_plans_macs_and_the_decision_cost()
    {
        var (_, r) = Generate("fbcache:threshold=0.8", [1, 6, 3]);
        Assert.True(r.PlansDiffer);
        var text = r.ToText();
        for (int i = 0; i < 3; i++)
            Assert.Contains($"image {i,-3}{r.ImagePlans[i].Letters}", text, StringComparison.Ordinal);
        Assert.Contains("decision", text, StringComparison.Ordinal);
        Assert.True(r.DecisionMilliseconds > 0);
        // MACs by hand: a computed step is a forward; a Skip step of FBCache runs the embedding, conditioning, block 0 and the final layer.
        var m = new MacCount(_model.Config, 16);
        long expected = 0;
        foreach (var p in r.ImagePlans)
            expected += 2 * (p.Count(StepKind.Skip) * (m.PatchEmbed + m.Conditioning + m.Block + m.FinalLayer) + (Steps - p.Count(StepKind.Skip)) * m.Forward);
        Assert.Equal(expected, r.Macs);
        Assert.Equal(r.ImagePlans.Sum(p => p.Count(StepKind.Skip)) * 3L, r.ImagePlans.Sum(p => p.BlocksSkipped));
        Assert.Contains("\"image_plans\"", r.ToJson(), StringComparison.Ordinal);
        Assert.Contains("\"indicator\"", r.ToJson(), StringComparison.Ordinal);
    }

    public void Dispose()
    {
        _model.Dispose();
        _ops.Dispose();
        _checkpoint.Dispose();
    }
}

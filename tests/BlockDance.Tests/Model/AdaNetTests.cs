using System.Text.Json;
using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Kernels;
using BlockDance.Kernels.Cpu;
using BlockDance.Runtime;
using BlockDance.Runtime.Safetensors;
using Xunit;

namespace BlockDance.Tests.Model;

/// <summary>
/// BlockDance-Ada's decision network against tools/ada_net.py (PyTorch): blocks, pooled features, logits and
/// probabilities of the dumps on the CPU and cuda-emu, the greedy plans the Python code derived (an independent
/// implementation of the rule), the rule itself against hand-written plans, and the errors of wrong files.
/// </summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class AdaNetTests
{
    private sealed class Recorder : IBlockObserver
    {
        public List<float[]> Blocks { get; } = [];
        public void OnBlockOutput(int block, Tensor x) => Blocks.Add(x.ToFloatArray());
    }

    internal sealed record Result(float[][] Blocks, float[] Pooled, float[] Logits, float[] Probs, string[] Plans);

    /// <summary>The network of <paramref name="weights"/> (a path) on the inputs of the dump at <paramref name="dumpPath"/>.</summary>
    internal static Result Run(IOps ops, string weights, string dumpPath)
    {
        using var net = AdaDecisionNet.Load(weights, ops);
        using var dump = SafetensorsFile.Open(dumpPath);
        var xInfo = dump["inputs.x"];
        int batch = xInfo.Shape[0];
        using var latent = ops.Device.FromFloats(dump.ReadFloat32("inputs.x"), ops.ActivationType, xInfo.ShapeToArray());
        using var labels = ops.Device.Allocate(DType.I32, batch);
        labels.CopyFrom<int>(dump.ReadInt64("inputs.y").Select(v => (int)v).ToArray());
        using var a = net.CreateActivations(batch);
        var recorder = new Recorder();
        net.Forward(latent, labels, a, recorder);
        var pooled = a.Pooled.ToFloatArray();
        var probs = new float[batch * net.Config.Outputs];
        net.Probabilities(latent, labels, a, probs);
        var logits = a.HostLogits.ToArray();
        var plans = new string[batch];
        var kinds = new StepKind[net.Config.Steps];
        for (int b = 0; b < batch; b++)
        {
            int k = net.Config.Outputs;
            AdaDecisionNet.GreedyPlan(probs.AsSpan(b * k, k), net.Config.RhoSteps, net.Config.Threshold, net.Config.MaxReuse, kinds);
            plans[b] = string.Concat(kinds.Select(StepPlan.Letter));
        }
        return new([.. recorder.Blocks], pooled, logits, probs, plans);
    }

    internal static IOps Open(string device, DType type) => device == "cpu" ? new CpuOps() : Backends.Open(device, 0, type);

    [Theory]
    [InlineData("cpu", "ada_small")]
    [InlineData("cpu", "ada_p4")]
    [InlineData("cuda-emu", "ada_small")]
    [InlineData("cuda-emu", "ada_p4")]
    [InlineData("cpu", "ada_video")]
    [InlineData("cuda-emu", "ada_video")]
    public void The_network_matches_pytorch_and_gives_its_greedy_plans(string device, string name)
    {
        using var ops = Open(device, DType.F32);
        AssertMatchesDump(ops, Fixtures.Path(name + ".safetensors"), Fixtures.Path(name + ".dump.safetensors"));
    }

    /// <summary>
    /// The network of <paramref name="weights"/> on the dump's inputs gives PyTorch's blocks, pooled features, logits and
    /// probabilities (1e-4 relative) and its greedy plans, and the dump's items get more than one plan.
    /// </summary>
    internal static void AssertMatchesDump(IOps ops, string weights, string dumpPath)
    {
        var r = Run(ops, weights, dumpPath);
        using var dump = SafetensorsFile.Open(dumpPath);
        int depth = dump.Tensors.Count(t => t.Name.StartsWith("outputs.blocks.", StringComparison.Ordinal));
        Assert.Equal(depth, r.Blocks.Length);
        for (int i = 0; i < depth; i++)
        {
            var (rel, report) = Reference.Compare(r.Blocks[i], dump.ReadFloat32($"outputs.blocks.{i}"));
            Assert.True(rel <= 1e-4, $"block {i}: {report}");
        }
        foreach (var (key, values) in new[] { ("pooled", r.Pooled), ("logits", r.Logits), ("probs", r.Probs) })
        {
            var (rel, report) = Reference.Compare(values, dump.ReadFloat32("outputs." + key));
            Assert.True(rel <= 1e-4, $"{key}: {report}");
        }
        var expected = JsonSerializer.Deserialize<string[]>(dump.Metadata["plans"])!;
        Assert.Equal(expected, r.Plans);
        Assert.True(expected.Distinct().Count() > 1, "the dump's items must get different plans");
    }

    [Theory]
    [InlineData(DType.F16, 1e-2, "ada_p4")]
    [InlineData(DType.BF16, 6e-2, "ada_p4")]
    [InlineData(DType.F16, 1e-2, "ada_video")]
    [InlineData(DType.BF16, 6e-2, "ada_video")]
    public void Sixteen_bit_logits_stay_within_their_precision_of_pytorch(DType type, double tolerance, string name)
    {
        // f16 keeps 11 significant bits, bf16 8: a 2- or 3-block network rounds every activation and weight.
        using var ops = Backends.Open("cuda-emu", 0, type);
        var r = Run(ops, Fixtures.Path(name + ".safetensors"), Fixtures.Path(name + ".dump.safetensors"));
        using var dump = SafetensorsFile.Open(Fixtures.Path(name + ".dump.safetensors"));
        var (rel, report) = Reference.Compare(r.Logits, dump.ReadFloat32("outputs.logits"));
        Assert.True(rel <= tolerance, $"{type}: {report}");
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda-emu")]
    public void A_video_network_reads_a_clip_batch_in_each_layout_of_the_same_memory(string device)
    {
        // The dump's clips [B, F, C, H, W] = [3, 5, 4, 4, 4]: the sampler's (B·F, C, H, W) and the frames-stacked
        // (B, F·C, H, W) are views of the same memory and give the same logits, bit for bit.
        using var ops = Open(device, DType.F32);
        using var net = AdaDecisionNet.Load(Fixtures.Path("ada_video.safetensors"), ops);
        Assert.Equal((5, 4), (net.Config.Frames, net.Config.InChannels));
        Assert.Equal(20, net.Config.EmbedChannels);
        using var dump = SafetensorsFile.Open(Fixtures.Path("ada_video.dump.safetensors"));
        var x = dump.ReadFloat32("inputs.x");
        using var labels = ops.Device.Allocate(DType.I32, 3);
        labels.CopyFrom<int>(dump.ReadInt64("inputs.y").Select(v => (int)v).ToArray());
        using var a = net.CreateActivations(3);
        float[] Logits(params int[] shape)
        {
            using var latent = ops.Device.FromFloats(x, DType.F32, shape);
            net.Forward(latent, labels, a);
            return a.Logits.ToFloatArray();
        }
        var clips = Logits(3, 5, 4, 4, 4);
        Assert.Equal(clips, Logits(15, 4, 4, 4));
        Assert.Equal(clips, Logits(3, 20, 4, 4));
        var (rel, report) = Reference.Compare(clips, dump.ReadFloat32("outputs.logits"));
        Assert.True(rel <= 1e-4, report);
        using var wrong = ops.Device.FromFloats(x[..(4 * 4 * 4 * 12)], DType.F32, 12, 4, 4, 4);   // 12 frames, not 3 clips of 5
        var e = Assert.Throws<ArgumentException>(() => net.Forward(wrong, labels, a));
        Assert.Contains("3 clips of 5 frames", e.Message, StringComparison.Ordinal);
        Assert.Contains("[12, 4, 4, 4]", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_image_network_has_one_frame_and_a_bad_frame_count_is_refused()
    {
        Assert.Equal(1, AdaConfig.Read(Fixtures.Path("ada_small.safetensors")).Frames);   // no num_frames in its metadata
        Assert.Equal(5, AdaConfig.Read(Fixtures.Path("ada_video.safetensors")).Frames);
        using var src = SafetensorsFile.Open(Fixtures.Path("ada_video.safetensors"));
        var meta = src.Metadata.ToDictionary(kv => kv.Key, kv => kv.Value);
        meta["num_frames"] = "0";
        var e = Assert.Throws<CheckpointException>(() => AdaConfig.FromMetadata(meta, "v.safetensors"));
        Assert.Contains("num_frames 0", e.Message, StringComparison.Ordinal);
        meta["num_frames"] = "3";   // the patch embedding then has the wrong input channels
        using var tmp = new Fixtures.TempDir();
        string path = tmp.File("v3.safetensors");
        var w = new SafetensorsWriter();
        foreach (var (k, v) in meta)
            w.SetMetadata(k, v);
        foreach (var t in src.Tensors)
            w.Add(t.Name, src.ReadFloat32(t.Name), t.ShapeToArray());
        w.Save(path);
        using var ops = new CpuOps();
        var shape = Assert.Throws<CheckpointException>(() => AdaDecisionNet.Load(path, ops));
        Assert.Contains("'x_embedder.proj.weight' has shape", shape.Message, StringComparison.Ordinal);
    }

    [Theory]
    // ρ·S = 3: F F C, then one decision per remaining step (threshold 0.5 unless given).
    [InlineData(new float[] { 0.9f, 0.1f, 0.5f, 0.49f }, 0.5, 3, "FFCCRCR")]
    [InlineData(new float[] { 0.1f, 0.1f, 0.1f, 0.1f, 0.1f }, 0.5, 2, "FFCRRCRR")]      // max_reuse 2 forces every third
    [InlineData(new float[] { 0.1f, 0.1f, 0.1f, 0.1f }, 0.5, 0, "FFCCCCC")]            // max_reuse 0: never reuse
    [InlineData(new float[] { 0.7f, 0.7f, 0.2f }, 0.75, 5, "FFCRRR")]                  // a higher threshold reuses more
    [InlineData(new float[] { 0.2f, 0.2f, 0.2f, 0.9f, 0.2f }, 0.5, 3, "FFCRRRCR")]    // the bound resets after a chosen Cache
    public void The_greedy_plan_follows_the_threshold_and_the_reuse_bound(float[] probs, double threshold, int maxReuse, string expected)
    {
        var kinds = new StepKind[3 + probs.Length];
        AdaDecisionNet.GreedyPlan(probs, 3, threshold, maxReuse, kinds);
        Assert.Equal(expected, string.Concat(kinds.Select(StepPlan.Letter)));
    }

    [Fact]
    public void The_first_steps_are_full_then_one_cache_step()
    {
        var kinds = new StepKind[6];
        AdaDecisionNet.GreedyPlan([0.1f], 5, 0.5, 3, kinds);
        Assert.Equal("FFFFCR", string.Concat(kinds.Select(StepPlan.Letter)));
        AdaDecisionNet.GreedyPlan([0.1f, 0.1f, 0.1f, 0.1f, 0.1f], 1, 0.5, 3, kinds);
        Assert.Equal("CRRRCR", string.Concat(kinds.Select(StepPlan.Letter)));
    }

    [Fact]
    public void A_dit_checkpoint_is_refused_naming_the_file()
    {
        using var ops = new CpuOps();
        var e = Assert.Throws<CheckpointException>(() => AdaDecisionNet.Load(Fixtures.TinyOriginal, ops));
        Assert.Contains("dit_tiny_original.safetensors", e.Message, StringComparison.Ordinal);
        Assert.Contains("blockdance-ada", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("drop", "head.fc2.bias", "missing tensor 'head.fc2.bias'")]
    [InlineData("meta", "hidden_size", "'pos_embed' has shape")]
    [InlineData("meta", "steps", "'head.fc2.weight' has shape")]
    [InlineData("nometa", "rho_steps", "metadata field 'rho_steps' is missing")]
    public void A_file_that_does_not_fit_its_metadata_is_refused_naming_the_key(string change, string key, string message)
    {
        using var tmp = new Fixtures.TempDir();
        string path = tmp.File("bad.safetensors");
        using (var src = SafetensorsFile.Open(Fixtures.Path("ada_small.safetensors")))
        {
            var w = new SafetensorsWriter();
            foreach (var (k, v) in src.Metadata)
                if (!(change == "nometa" && k == key))
                    w.SetMetadata(k, change == "meta" && k == key ? (int.Parse(v, System.Globalization.CultureInfo.InvariantCulture) + 4).ToString(System.Globalization.CultureInfo.InvariantCulture) : v);
            foreach (var t in src.Tensors)
                if (!(change == "drop" && t.Name == key))
                    w.Add(t.Name, src.ReadFloat32(t.Name), t.ShapeToArray());
            w.Save(path);
        }
        using var ops = new CpuOps();
        var e = Assert.Throws<CheckpointException>(() => AdaDecisionNet.Load(path, ops));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }
}

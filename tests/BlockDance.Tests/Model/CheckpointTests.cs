using BlockDance.Dit;
using BlockDance.Runtime;
using BlockDance.Runtime.Safetensors;
using Xunit;

namespace BlockDance.Tests.Model;

public sealed class CheckpointTests
{
    [Fact]
    public void Original_checkpoint_configuration_is_inferred_from_the_weights()
    {
        using var c = DitCheckpoint.Open(Fixtures.Path("dit_tiny_p4_original.safetensors"));
        Assert.Equal(DitLayout.Original, c.Layout);
        Assert.Equal((3, 48, 3, 4, 4, false, 7, 16), (c.Config.Depth, c.Config.HiddenSize, c.Config.Heads, c.Config.PatchSize,
            c.Config.InChannels, c.Config.LearnSigma, c.Config.NumClasses, c.Config.InputSize));
        Assert.Equal(DitNumerics.Original, c.Config.Numerics);
    }

    [Fact]
    public void Diffusers_checkpoint_is_detected_and_gets_diffusers_numerics()
    {
        using var c = DitCheckpoint.Open(Fixtures.TinyDiffusers);
        Assert.Equal(DitLayout.Diffusers, c.Layout);
        Assert.Equal((4, 32, 4, 2, true, 10), (c.Config.Depth, c.Config.HiddenSize, c.Config.Heads, c.Config.PatchSize, c.Config.LearnSigma, c.Config.NumClasses));
        Assert.Equal(1, c.Config.Numerics.FrequencyShift);
        Assert.Equal(1e-5f, c.Config.Numerics.MlpNormEps);
        Assert.Equal(4, c.Config.Numerics.GuidedChannels);
        using var o = DitCheckpoint.Open(Fixtures.TinyOriginal);
        Assert.Equal(o.ParameterCount, c.ParameterCount);
    }

    [Fact]
    public void Presets_have_the_published_shapes()
    {
        var xl = DitConfig.Preset("DiT-XL/2");
        Assert.Equal((28, 1152, 16, 2, 72), (xl.Depth, xl.HiddenSize, xl.Heads, xl.PatchSize, xl.HeadDim));
        Assert.Equal((12, 768, 12, 4), (DitConfig.Preset("B/4").Depth, DitConfig.Preset("B/4").HiddenSize, DitConfig.Preset("B/4").Heads, DitConfig.Preset("B/4").PatchSize));
        Assert.Equal(6, DitConfig.Preset("s/8").Heads);
        Assert.Equal(24, DitConfig.Preset("L/2").Depth);
        Assert.Throws<Runtime.InvalidRequestException>(() => DitConfig.Preset("M/2"));
        Assert.Throws<Runtime.InvalidRequestException>(() => DitConfig.Preset("XL/3"));
    }

    [Fact]
    public void Incomplete_checkpoint_lists_missing_unexpected_and_misshaped_keys()
    {
        using var dir = new Fixtures.TempDir();
        string path = dir.File("broken.safetensors");
        Rewrite(Fixtures.TinyOriginal, path, (name, shape, data) => name switch
        {
            "blocks.2.mlp.fc2.bias" => null,                                        // missing
            "blocks.1.attn.proj.weight" => ("blocks.1.attn.proj.weight", [32, 31], data.AsSpan(0, 32 * 31 * 4).ToArray()), // mis-shaped
            _ => (name, shape, data),
        }, extra: ("blocks.0.attn.rogue", [2], new byte[8]));
        var e = Assert.Throws<CheckpointException>(() => DitCheckpoint.Open(path));
        Assert.Contains("missing (1): blocks.2.mlp.fc2.bias [32]", e.Message, StringComparison.Ordinal);
        Assert.Contains("unexpected (1): blocks.0.attn.rogue", e.Message, StringComparison.Ordinal);
        Assert.Contains("blocks.1.attn.proj.weight: [32, 31], expected [32, 32]", e.Message, StringComparison.Ordinal);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_layout_is_named_as_such()
    {
        using var dir = new Fixtures.TempDir();
        string path = dir.File("other.safetensors");
        new SafetensorsWriter().Add("encoder.weight", (ReadOnlySpan<float>)new float[4], [2, 2]).Save(path);
        var e = Assert.Throws<CheckpointException>(() => DitCheckpoint.Open(path));
        Assert.Contains("not a DiT checkpoint in a known layout", e.Message, StringComparison.Ordinal);
        Assert.Contains("encoder.weight", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PixArt_checkpoints_are_recognised_and_refused()
    {
        using var dir = new Fixtures.TempDir();
        string path = dir.File("pixart.safetensors");
        Rewrite(Fixtures.TinyOriginal, path, (n, s, d) => (n, s, d), extra: ("t_block.1.weight", [2], new byte[8]));
        var e = Assert.Throws<CheckpointException>(() => DitCheckpoint.Open(path));
        Assert.Contains("PixArt", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Head_count_comes_from_metadata_or_option_and_its_absence_is_explained()
    {
        using var dir = new Fixtures.TempDir();
        string path = dir.File("noheads.safetensors");
        Rewrite(Fixtures.TinyOriginal, path, (n, s, d) => (n, s, d), dropMetadata: true);
        var e = Assert.Throws<CheckpointException>(() => DitCheckpoint.Open(path));
        Assert.Contains("--heads", e.Message, StringComparison.Ordinal);
        using var c = DitCheckpoint.Open(path, heads: 2);
        Assert.Equal(2, c.Config.Heads);
        var bad = Assert.Throws<CheckpointException>(() => DitCheckpoint.Open(path, heads: 5));
        Assert.Contains("not divisible by 5 heads", bad.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Diffusers_checkpoint_with_differing_per_block_embedders_is_refused()
    {
        using var dir = new Fixtures.TempDir();
        string path = dir.File("finetuned.safetensors");
        Rewrite(Fixtures.TinyDiffusers, path, (name, shape, data) =>
        {
            if (name == "transformer_blocks.2.norm1.emb.timestep_embedder.linear_2.bias")
                data[5] ^= 0x40;   // one copy no longer equals block 0's
            return (name, shape, data);
        });
        var e = Assert.Throws<CheckpointException>(() => DitCheckpoint.Open(path));
        Assert.Contains("transformer_blocks.2.norm1.emb.timestep_embedder.linear_2.bias", e.Message, StringComparison.Ordinal);
        Assert.Contains("differs from block 0", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("dit_tiny_original.safetensors", "blocks.1.mlp.fc1.weight", 100, float.NaN)]
    [InlineData("dit_tiny_diffusers.safetensors", "transformer_blocks.2.attn1.to_k.weight", 37, float.PositiveInfinity)]
    public void A_non_finite_weight_is_named_with_its_tensor_and_element(string fixture, string key, int element, float value)
    {
        using var dir = new Fixtures.TempDir();
        string path = dir.File("bad.safetensors");
        Rewrite(Fixtures.Path(fixture), path, (name, shape, data) =>
        {
            if (name == key)
                BitConverter.TryWriteBytes(data.AsSpan(element * 4, 4), value);
            return (name, shape, data);
        });
        using var checkpoint = DitCheckpoint.Open(path);
        using var ops = new Kernels.Cpu.CpuOps();
        var e = Assert.Throws<CheckpointException>(() => DitModel.Load(checkpoint, ops));
        // diffusers' to_k is the middle third of the fused qkv the model loads: the message still names to_k.
        Assert.Contains($"tensor '{key}' holds {value} at element {element}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NonFinite_finds_the_first_bad_value_like_a_plain_loop()
    {
        var rng = new Random(3);
        for (int trial = 0; trial < 200; trial++)
        {
            var v = new float[rng.Next(0, 40)];
            for (int i = 0; i < v.Length; i++)
                v[i] = rng.Next(10) switch { 0 => float.NaN, 1 => float.NegativeInfinity, _ => (float)rng.NextDouble() * 1e30f };
            Assert.Equal(Array.FindIndex(v, x => !float.IsFinite(x)), NonFinite.IndexOf(v));
        }
    }

    /// <summary>Copies a checkpoint tensor by tensor through <paramref name="map"/> (null drops a tensor).</summary>
    internal static void Rewrite(string source, string target, Func<string, int[], byte[], (string, int[], byte[])?> map,
        (string Name, int[] Shape, byte[] Data)? extra = null, bool dropMetadata = false)
    {
        using var file = SafetensorsFile.Open(source);
        var writer = new SafetensorsWriter();
        foreach (var t in file.Tensors)
            if (map(t.Name, t.ShapeToArray(), file.GetBytes(t.Name).ToArray()) is var (name, shape, data))
                writer.Add(name, t.DType, shape, data);
        if (extra is var (n, s, d))
            writer.Add(n, DType.F32, s, d);
        if (!dropMetadata)
            foreach (var (k, v) in file.Metadata)
                writer.SetMetadata(k, v);
        writer.Save(target);
    }
}

/// <summary>
/// Zero-copy loading, measured on the CPU device's live-byte count. The CPU device is one per process, so the test runs
/// in the collection that no other test runs beside (a parallel test's allocation would change the count).
/// </summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class CheckpointZeroCopyTests
{
    [Fact]
    public void Weights_of_a_cpu_float32_checkpoint_are_views_of_the_mapped_file()
    {
        using var c = DitCheckpoint.Open(Fixtures.TinyOriginal);
        using var ops = new Kernels.Cpu.CpuOps();
        long before = ops.Device.LiveBytes;
        using var model = DitModel.Load(c, ops);
        Assert.Equal(before, ops.Device.LiveBytes);   // no weight was copied
        Assert.Equal(c.File.GetAddress("blocks.0.attn.qkv.weight"), model.Blocks[0].Qkv.Weight.Address);
    }
}

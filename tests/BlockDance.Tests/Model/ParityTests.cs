using BlockDance.Cli.Commands;
using BlockDance.Dit;
using BlockDance.Dit.Pipeline;
using BlockDance.Dit.Sampling;
using BlockDance.Kernels.Cpu;
using BlockDance.Runtime.Safetensors;
using Xunit;

namespace BlockDance.Tests.Model;

/// <summary>
/// The model against dumps written by the independent PyTorch reference (tools/dit_reference.py). Tolerances, as
/// max|a−b| / max|b| per tensor: 1e-4 for one forward (fp32 on both sides; measured ~1e-6) and 1e-3 for a whole
/// sampling run, whose error compounds over the steps and is amplified by guidance (measured ~1e-6).
/// </summary>
public sealed class ParityTests
{
    private const double ForwardTolerance = 1e-4;
    private const double SampleTolerance = 1e-3;

    public static TheoryData<string> Models => new() { "dit_tiny_original", "dit_tiny_diffusers", "dit_tiny_p4_original" };

    [Theory]
    [MemberData(nameof(Models))]
    public void Forward_matches_pytorch_block_by_block(string name)
    {
        using var dump = SafetensorsFile.Open(Fixtures.Path(name + ".dump.safetensors"));
        Assert.Equal(ParityCommand.DumpFormat, dump.Metadata["format"]);
        using var ops = new CpuOps();
        var (output, blocks, config) = DumpForward.Run(ops, name + ".safetensors", name + ".dump.safetensors");

        Assert.Equal(config.Depth, blocks.Count);
        for (int i = 0; i < config.Depth; i++)
        {
            var (rel, report) = Reference.Compare(blocks[i], dump.ReadFloat32($"outputs.blocks.{i}"));
            Assert.True(rel <= ForwardTolerance, $"{name} block {i}: {report}");
        }
        var (outRel, outReport) = Reference.Compare(output, dump.ReadFloat32("outputs.out"));
        Assert.True(outRel <= ForwardTolerance, $"{name} output: {outReport}");
    }

    [Fact]
    public void Diffusers_forward_at_a_larger_latent_rescales_the_position_embedding_like_diffusers()
    {
        // 12×12 latent = 6×6 patch grid on a model trained at 4×4: diffusers' PatchEmbed coordinates are arange(6)/(6/4).
        var (code, output, _) = Cli.CliTests.Run("parity", "--weights", Fixtures.TinyDiffusers, "--dump", Fixtures.Path("dit_tiny_diffusers.size12.dump.safetensors"));
        Assert.True(code == 0, output);
        Assert.Contains("all 5 tensors pass", output, StringComparison.Ordinal);
    }

    public static TheoryData<string, string> SamplingRuns => new()
    {
        { "dit_tiny_original", "dit_tiny_original.dump" },            // DDIM, eta 0, guidance on 3 channels
        { "dit_tiny_diffusers", "dit_tiny_diffusers.dump" },          // diffusers DDIM, leading spacing, guidance on 4 channels
        { "dit_tiny_p4_original", "dit_tiny_p4_original.dump" },      // no learned sigma, guidance 1.5
        { "dit_tiny_original", "dit_tiny_original.ancestral.dump" },  // learned-range ancestral sampler with recorded noise
        { "dit_tiny_original", "dit_tiny_original.ddim_eta.dump" },   // DDIM eta 0.5 with recorded noise
    };

    [Theory]
    [MemberData(nameof(SamplingRuns))]
    public void Sampling_run_with_guidance_matches_pytorch(string weights, string dumpName)
    {
        using var dump = SafetensorsFile.Open(Fixtures.Path(dumpName + ".safetensors"));
        var m = dump.Metadata;
        var numerics = DitNumerics.For(m["layout"] == "diffusers" ? DitLayout.Diffusers : DitLayout.Original);
        using var checkpoint = DitCheckpoint.Open(Fixtures.Path(weights + ".safetensors"), numerics: numerics);
        using var ops = new CpuOps();
        using var model = DitModel.Load(checkpoint, ops);
        var noise = dump["sample.noise"];
        int steps = int.Parse(m["steps"], System.Globalization.CultureInfo.InvariantCulture);
        var request = new GenerationRequest
        {
            Labels = dump.ReadInt64("sample.y").Select(v => (int)v).ToArray(),
            Steps = steps,
            Sampler = m["sampler"] == "ancestral" ? SamplerKind.Ancestral : m["timestep_spacing"] == "leading" ? SamplerKind.DdimLeading : SamplerKind.Ddim,
            Eta = float.Parse(m["eta"], System.Globalization.CultureInfo.InvariantCulture),
            GuidanceScale = float.Parse(m["cfg_scale"], System.Globalization.CultureInfo.InvariantCulture),
            LatentSize = noise.Shape[2],
            InitialNoise = dump.ReadFloat32("sample.noise"),
            StepNoise = dump.Contains("sample.step_noise") ? new RecordedStepNoise(dump.ReadFloat32("sample.step_noise")) : null,
        };
        Assert.Equal(int.Parse(m["cfg_channels"], System.Globalization.CultureInfo.InvariantCulture), checkpoint.Config.Numerics.GuidedChannels);
        using var run = new SamplingRun(model, request);
        var (rel, report) = Reference.Compare(run.Run(), dump.ReadFloat32("sample.out"));
        Assert.True(rel <= SampleTolerance, $"{dumpName}: {report}");
    }

    [Fact]
    public void The_two_layouts_of_one_network_differ_only_by_numerics()
    {
        // Same weights, read through both key layouts with the same numerics: identical outputs.
        using var ops = new CpuOps();
        float[] Run(string path, DitNumerics numerics)
        {
            using var checkpoint = DitCheckpoint.Open(path, numerics: numerics);
            using var model = DitModel.Load(checkpoint, ops);
            using var run = new SamplingRun(model, new GenerationRequest { Labels = [1, 2], Steps = 4, Seed = 7 });
            return run.Run();
        }
        var a = Run(Fixtures.TinyOriginal, DitNumerics.Original);
        var b = Run(Fixtures.TinyDiffusers, DitNumerics.Original);
        Assert.Equal(a, b);
        var c = Run(Fixtures.TinyDiffusers, DitNumerics.Diffusers);
        Assert.True(Reference.Compare(c, a).Rel > 1e-3, "diffusers numerics (timestep divisor 127, MLP eps 1e-5, 4 guided channels) must change the result");
    }

}

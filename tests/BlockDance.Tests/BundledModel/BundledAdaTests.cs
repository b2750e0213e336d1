using System.Text.Json;
using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Runtime;
using Xunit;

namespace BlockDance.Tests.BundledModel;

/// <summary>
/// The shipped BlockDance-Ada networks deciding for the bundled models exactly as <c>./blockdance generate --cache ada</c>
/// runs them (DDIM 50, guidance 4, ρ = 0.4): models/ada-dit-shapes-32.safetensors for the image DiT,
/// models/ada-latte-shapes-video-32.safetensors for the video Latte (per clip).
/// </summary>
public sealed class BundledAdaTests
{
    /// <summary>
    /// The plans PyTorch's network (tools/ada_net.py, an independent implementation) and rollout give on the 144 starts
    /// of the training and held-out pools (tools/ada_train.py evaluate; models/README.md): every bars image gets one
    /// plan with 17 Reuse steps, every image of the seven other classes another with 20. The network reads the class
    /// and the latent after 20 steps; within one class its probabilities move by at most 0.01 between those starts, and
    /// the closest decision (bars, step 25) has p = 0.53, so other noise must give the same plans.
    /// </summary>
    private const string BarsPlan = "FFFFFFFFFFFFFFFFFFFCRCCRCCRCRCCCRCRRRCRRRCRRRCRRCR";
    private const string OtherPlan = "FFFFFFFFFFFFFFFFFFFCRCCRCRRCRCRRRCRRRCRRRCRRRCRRCR";
    private const int Bars = 6;

    [Fact]
    public void The_shipped_network_gives_bars_images_a_plan_with_fewer_reuse_steps_than_the_other_classes()
    {
        string model = DitPipeline.FindBundled()
            ?? throw new FileNotFoundException("the bundled model models/dit-shapes-32.safetensors is missing from the repository");
        string ada = Path.Combine(Path.GetDirectoryName(model)!, "ada-dit-shapes-32.safetensors");
        using var dir = new Fixtures.TempDir();
        string report = dir.File("report.json");
        int[] labels = [0, 1, 2, 3, 4, 5, 6, 7, 6, 0];
        var (code, _, err) = Cli.CliTests.Run("generate", "--cache", $"ada:weights={ada}", "--labels", string.Join(',', labels),
            "--steps", "50", "--seed", "5", "--quiet", "--out", dir.File("latents.safetensors"), "--report", report);
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(File.ReadAllText(report));
        string[] plans = doc.RootElement.GetProperty("image_plans").EnumerateArray().Select(p => p.GetString()!).ToArray();
        Assert.Equal(labels.Length, plans.Length);
        for (int i = 0; i < labels.Length; i++)
            Assert.True(plans[i] == (labels[i] == Bars ? BarsPlan : OtherPlan), $"image {i} (class {labels[i]}): plan {plans[i]}");
        Assert.True(BarsPlan.Count(c => c == 'R') < OtherPlan.Count(c => c == 'R'));
    }

    /// <summary>
    /// The greedy plan PyTorch's network gives each class (disc-right, disc-left, square-right, square-spin, disc-grow,
    /// square-bounce): the same for every start of a class among the 32 training and 12 held-out starts
    /// (tools/ada_train.py; models/README.md), 15 to 17 Reuse steps.
    /// </summary>
    private static readonly string[] VideoPlanOfClass =
    [
        "FFFFFFFFFFFFFFFFFFFCCCCRRCRRCCCRRRCCRRCRCRRRCRCCCR",
        "FFFFFFFFFFFFFFFFFFFCCCCRRCRRCCRRRCCRRRCRCRRRCRRCCR",
        "FFFFFFFFFFFFFFFFFFFCCCCRRCRRCCCRRRCRRRCRCRRRCRRCCR",
        "FFFFFFFFFFFFFFFFFFFCCCCRRCRRCCRCRRCRRRCRCRRCCRRCCR",
        "FFFFFFFFFFFFFFFFFFFCCCCRRCRRCCRCRRCRRRCRCRRRCRRCCR",
        "FFFFFFFFFFFFFFFFFFFCCCCRRCRRCCCRRRCCRRCRCRRRCRRCCR",
    ];

    private static string VideoNetwork => DitPipeline.FindModelsFile(AdaPolicy.BundledVideoWeights, out _)
        ?? throw new FileNotFoundException($"the bundled video decision network models/{AdaPolicy.BundledVideoWeights} is missing from the repository");

    /// <summary>
    /// The shipped video network on the inputs it meets in a real run: the clips' latents after 20 steps of six held-out
    /// starts (tools/ada_train.py's pool, seed 2, one clip per class), run through PyTorch's network by
    /// <c>tools/ada_net.py dump --inputs</c> (tests/fixtures/README.md). The C# network gives the same blocks,
    /// probabilities and greedy plans on the CPU and cuda-emu; the plans differ between the clips.
    /// </summary>
    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda-emu")]
    public void The_shipped_video_network_gives_pytorchs_probabilities_and_plans_on_real_latents(string device)
    {
        const string dumpName = "ada_latte_shapes_video_pool.dump.safetensors";
        Assert.Equal(8, AdaConfig.Read(VideoNetwork).Frames);
        using var ops = Model.AdaNetTests.Open(device, DType.F32);
        Model.AdaNetTests.AssertMatchesDump(ops, VideoNetwork, Fixtures.Path(dumpName));
    }

    /// <summary>
    /// <c>generate --model shapes-video --cache ada</c> with no weights takes the shipped video network and executes a
    /// plan per clip: the run report's <c>image_plans</c> has one plan per clip, each starting with 19 Full steps and
    /// the Cache step 19, with at most <c>max_reuse</c> = 3 Reuse steps in a row, the plans PyTorch gives each class,
    /// and fewer MACs than without cache (the per-clip execution itself is tested against clips run alone in
    /// LatteAdaptiveTests).
    /// </summary>
    [Fact]
    public void Generate_on_the_bundled_video_model_plans_each_clip_with_the_shipped_network()
    {
        using var dir = new Fixtures.TempDir();
        string report = dir.File("report.json");
        int[] labels = [0, 1, 2, 3, 4, 5];
        var (code, _, err) = Cli.CliTests.Run("generate", "--model", "shapes-video", "--cache", "ada", "--labels", string.Join(',', labels),
            "--steps", "50", "--seed", "5", "--quiet", "--out", dir.File("clips.safetensors"), "--report", report);
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(File.ReadAllText(report));
        var root = doc.RootElement;
        Assert.Equal("ada", root.GetProperty("policy").GetString());
        string[] plans = root.GetProperty("image_plans").EnumerateArray().Select(x => x.GetString()!).ToArray();
        Assert.Equal(labels.Length, plans.Length);
        foreach (string plan in plans)
        {
            Assert.Equal(50, plan.Length);
            Assert.StartsWith(new string('F', 19) + "C", plan, StringComparison.Ordinal);
            Assert.DoesNotContain("RRRR", plan, StringComparison.Ordinal);
            Assert.Matches("^[FCR]+$", plan);
        }
        // The plan PyTorch's network gives each class on the 12 held-out and the 32 training starts (other noise than
        // these clips'): six different plans, one per class.
        for (int i = 0; i < labels.Length; i++)
            Assert.True(plans[i] == VideoPlanOfClass[labels[i]], $"clip {i} (class {labels[i]}): plan {plans[i]}, PyTorch's for the class {VideoPlanOfClass[labels[i]]}");
        Assert.Equal(labels.Length, plans.Distinct().Count());
        Assert.True(root.GetProperty("macs").GetDouble() < root.GetProperty("macs_without_cache").GetDouble());
    }
}

using System.Text.Json;
using BlockDance.Dit.Pipeline;
using Xunit;

namespace BlockDance.Tests.BundledModel;

/// <summary>
/// The shipped BlockDance-Ada network (models/ada-dit-shapes-32.safetensors) deciding for the bundled DiT exactly as
/// <c>./blockdance generate --cache ada</c> runs it (DDIM 50, guidance 4, ρ = 0.4).
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
}

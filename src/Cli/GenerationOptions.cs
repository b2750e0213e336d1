using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Dit.Sampling;

namespace BlockDance.Cli;

/// <summary>The sampling options shared by generate, compare and analyze.</summary>
public static class GenerationOptions
{
    /// <summary>Adds --labels, --seed, --steps, --sampler, --eta, --guidance, --latent-size and --cache.</summary>
    public static CommandSpec Add(CommandSpec spec, string defaultCache = "none") => spec
        .Option("--labels", "LIST", "class labels, one image each (e.g. 1,2,5-7; num_classes = unconditional); default 0,1,2,3, or --per-class images of every class for the bundled model")
        .Option("--seed", "N", "seed of all the noise (same seed, same bytes)", "0")
        .Option("--steps", "N", "sampling steps", "50")
        .Option("--sampler", "NAME", "ddim, ddim-leading (diffusers spacing) or ancestral", "ddim")
        .Option("--eta", "F", "DDIM eta in [0, 1] (0 = deterministic, 1 = DDPM-like)", "0")
        .Option("--guidance", "F", "classifier-free guidance scale (≤ 1 disables guidance)", "4")
        .Option("--latent-size", "N", "latent height and width (default: the model's input size)")
        .Option("--cache", "POLICY", CachePolicy.Syntax, defaultCache);

    /// <summary>The request; <paramref name="defaultLabels"/> when --labels is not given.</summary>
    public static GenerationRequest Read(ParsedArgs args, int[]? defaultLabels = null)
    {
        var request = Build(args, defaultLabels);
        if (request.Cache is ExplicitPlan plan)
            Inputs.Require(plan.Path, "--cache plan:FILE");
        return request;
    }

    private static GenerationRequest Build(ParsedArgs args, int[]? defaultLabels) => new()
    {
        Labels = args.Has("--labels") ? args.IntList("--labels") : defaultLabels ?? [0, 1, 2, 3],
        Seed = args.ULong("--seed"),
        Steps = args.Int("--steps", 1, 1000),
        Sampler = args.Choice("--sampler", Sampler.Parse),
        Eta = (float)args.Double("--eta", 0, 1),
        GuidanceScale = (float)args.Double("--guidance", -1000, 1000),
        LatentSize = args.OptionalInt("--latent-size", 1, 4096),
        Cache = args.Choice("--cache", CachePolicy.Parse),
    };
}

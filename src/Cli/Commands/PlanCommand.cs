using BlockDance.Dit;
using BlockDance.Dit.Caching;

namespace BlockDance.Cli.Commands;

/// <summary><c>blockdance plan</c>: prints the step plan of a cache policy, one letter per step, or its JSON.</summary>
public sealed class PlanCommand : ICommand
{
    /// <inheritdoc/>
    public CommandSpec Spec { get; } = new CommandSpec("plan",
            "Print the cache plan of a static policy: one letter per step (F full, C cache, R reuse), or JSON with --json.\n" +
            "An adaptive policy (bwcache, teacache, fbcache) or ada decides at run time; its executed plan is in the run report.")
        .Option("--steps", "S", "sampling steps", "50")
        .Option("--depth", "D", "transformer blocks (default: the depth of --weights, else of the bundled model)")
        .Option("--weights", "FILE", "read the depth from this checkpoint (default: the bundled model)")
        .Option("--cache", "POLICY", CachePolicy.Syntax, "blockdance:n=2")
        .Flag("--json", "print the plan as JSON (readable by --cache plan:FILE.json)");

    /// <inheritdoc/>
    public int Run(ParsedArgs args, Console2 console)
    {
        int steps = args.Int("--steps", 1, 100000);
        var policy = args.Choice("--cache", CachePolicy.Parse);
        int depth;
        if (args.Has("--depth") && args.Has("--weights"))
            throw new UsageException("give --depth or --weights, not both");
        if (args.OptionalInt("--depth", 1, 10000) is int d)
        {
            depth = d;
        }
        else
        {
            // The bundled model's depth (and so the policy's default boundary for it), or the given checkpoint's.
            using var checkpoint = DitCheckpoint.Open(ModelOptions.Weights(args));
            depth = checkpoint.Config.Depth;
        }
        if (policy is AdaPolicy)
        {
            console.Out.WriteLine($"{policy.Spec} is decided at run time, per image: steps 0 … ρ·S−2 are full and step ρ·S−1 caches; then " +
                "its decision network reads each image's latent and label and plans the remaining steps (C cache, R reuse; " +
                "greedy with the network's threshold and max_reuse). 'generate --report FILE' (and compare --report) record each image's plan.");
            return 0;
        }
        if (policy.IsDynamic)
        {
            console.Out.WriteLine($"{policy.Spec} is adaptive: it decides each step at run time from an indicator the run measures, " +
                "so it has no plan ahead of the run. 'generate --report FILE' (and compare --report) record the plan it executed, " +
                "per image, with the indicator at each step (letters: F full, C cache, R reuse, S skip).");
            return 0;
        }
        var plan = policy.Plan(steps, depth);
        console.Out.WriteLine(args.Flag("--json") ? plan.ToJson() : plan.Describe());
        return 0;
    }
}

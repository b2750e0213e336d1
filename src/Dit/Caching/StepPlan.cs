using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using BlockDance.Runtime;

namespace BlockDance.Dit.Caching;

/// <summary>What one denoising step does with the feature cache.</summary>
public enum StepKind
{
    /// <summary>Runs every block and stores nothing.</summary>
    Full,

    /// <summary>Runs every block and stores the output of block <c>i−1</c> (the boundary i, 0-based blocks).</summary>
    Cache,

    /// <summary>Skips blocks <c>0 … i−1</c> and starts block i from the stored tensor, with this step's conditioning.</summary>
    Reuse,

    /// <summary>
    /// Skips blocks <see cref="StepPlan.SkipFrom"/> … depth−1, the whole stack for BWCache and TeaCache: either the stored
    /// output of the last block is used verbatim (BWCache) or the stored residual of those blocks is added to this step's
    /// input of block <see cref="StepPlan.SkipFrom"/> (TeaCache, First-Block-Cache; <see cref="StepPlan.SkipAddsResidual"/>).
    /// Decided at run time by an adaptive policy; the conditioning and the final layer always run with this step's t.
    /// </summary>
    Skip,
}

/// <summary>
/// A cache plan: the kind of every step and the boundary block. Steps are numbered <c>k = 0 … S−1</c> in sampling
/// order (<c>k = 0</c> is the noisiest). The boundary <c>i</c> counts blocks: a <b>Cache</b> step runs the full model
/// and stores the output of block <c>i−1</c> (0-based); a <b>Reuse</b> step skips blocks <c>0 … i−1</c> and starts
/// block <c>i</c> from the stored tensor, with the current step's conditioning. A <b>Full</b> step runs everything and
/// stores nothing. A plan is plain data: it prints as one letter per step (F, C, R) and reads and writes JSON.
/// </summary>
public sealed class StepPlan
{
    /// <summary>The value of the <c>"format"</c> field of a plan's JSON.</summary>
    public const string Format = "blockdance.plan/1";

    private readonly StepKind[] _kinds;

    /// <summary>Creates and validates a plan: a Reuse step needs an earlier Cache step, and a plan that caches needs a boundary in <c>[1, depth−1]</c>.</summary>
    public StepPlan(IEnumerable<StepKind> kinds, int boundary, int depth) : this(kinds, boundary, depth, 0, false, adaptive: false)
    {
    }

    /// <summary>
    /// A plan that may contain <see cref="StepKind.Skip"/> steps (an adaptive policy's executed plan): they skip blocks
    /// <paramref name="skipFrom"/> … depth−1 and reuse the stored output (<paramref name="skipAddsResidual"/> false) or add
    /// the stored residual of those blocks (true). A Skip step needs an earlier Cache step, like a Reuse step; a Cache
    /// step needs a boundary only when a Reuse step follows (it may fill only what Skip steps use).
    /// </summary>
    public StepPlan(IEnumerable<StepKind> kinds, int boundary, int depth, int skipFrom, bool skipAddsResidual)
        : this(kinds, boundary, depth, skipFrom, skipAddsResidual, adaptive: true)
    {
    }

    private StepPlan(IEnumerable<StepKind> kinds, int boundary, int depth, int skipFrom, bool skipAddsResidual, bool adaptive)
    {
        _kinds = kinds.ToArray();
        Boundary = boundary;
        Depth = depth;
        SkipFrom = skipFrom;
        SkipAddsResidual = skipAddsResidual;
        if (_kinds.Length == 0)
            throw new PlanException("a plan needs at least one step");
        if (depth < 1)
            throw new PlanException($"depth must be positive, not {depth}");
        // A boundary is needed by Reuse steps, and by the Cache steps of a static plan.
        bool needsBoundary = _kinds.Contains(StepKind.Reuse) || (!adaptive && _kinds.Contains(StepKind.Cache));
        if (needsBoundary && (boundary < 1 || boundary >= depth))
            throw new PlanException($"boundary {boundary} is out of range: a {depth}-block model caches at a boundary in [1, {depth - 1}] " +
                "(0 would cache nothing, the depth itself would skip every block)");
        if (!adaptive && _kinds.Contains(StepKind.Skip))
            throw new PlanException("Skip steps are decided at run time by an adaptive policy (bwcache, teacache, fbcache); a static plan cannot contain them");
        if (skipFrom < 0 || skipFrom >= depth)
            throw new PlanException($"a Skip step starts skipping at block {skipFrom}, outside [0, {depth - 1}]");
        int firstCache = Array.IndexOf(_kinds, StepKind.Cache);
        int firstReuse = Array.IndexOf(_kinds, StepKind.Reuse);
        if (firstReuse >= 0 && (firstCache < 0 || firstCache > firstReuse))
            throw new PlanException($"step {firstReuse} reuses the cache, but no earlier step fills it (a Reuse needs a Cache before it)");
        int firstSkip = Array.IndexOf(_kinds, StepKind.Skip);
        if (firstSkip >= 0 && (firstCache < 0 || firstCache > firstSkip))
            throw new PlanException($"step {firstSkip} skips the stack, but no earlier step fills the cache (a Skip needs a Cache before it)");
    }

    /// <summary>The kind of every step, in sampling order.</summary>
    public IReadOnlyList<StepKind> Kinds => _kinds;
    /// <summary>The kind of step <paramref name="k"/>.</summary>
    public StepKind this[int k] => _kinds[k];
    /// <summary>Number of steps S.</summary>
    public int Steps => _kinds.Length;
    /// <summary>The boundary block i (0 for a plan that never caches).</summary>
    public int Boundary { get; }
    /// <summary>Number of blocks of the model the plan was made for.</summary>
    public int Depth { get; }

    /// <summary>First block a <see cref="StepKind.Skip"/> step skips (0: the whole stack; 1 for First-Block-Cache).</summary>
    public int SkipFrom { get; }

    /// <summary>A Skip step adds the stored residual of the skipped blocks to this step's input (TeaCache, FBCache) instead of reusing their stored output (BWCache); it then also runs the patch embedding.</summary>
    public bool SkipAddsResidual { get; }

    /// <summary>True when some step caches or reuses.</summary>
    public bool UsesCache => _kinds.Any(k => k != StepKind.Full);
    /// <summary>Number of steps of <paramref name="kind"/>.</summary>
    public int Count(StepKind kind) => _kinds.Count(k => k == kind);

    /// <summary>Blocks skipped by one step of <paramref name="kind"/>.</summary>
    public int SkippedBlocks(StepKind kind) => kind switch { StepKind.Reuse => Boundary, StepKind.Skip => Depth - SkipFrom, _ => 0 };

    /// <summary>Blocks computed over the whole run (a Reuse step skips <see cref="Boundary"/> of them, a Skip step depth − <see cref="SkipFrom"/>).</summary>
    public long BlocksComputed => (long)Steps * Depth - BlocksSkipped;

    /// <summary>Block evaluations the plan skips over the whole run.</summary>
    public long BlocksSkipped => (long)Count(StepKind.Reuse) * Boundary + (long)Count(StepKind.Skip) * (Depth - SkipFrom);

    /// <summary>A plan that runs every block at every step.</summary>
    public static StepPlan AllFull(int steps, int depth) => new(Enumerable.Repeat(StepKind.Full, steps), 0, depth);

    /// <summary>One letter per step: F (full), C (cache), R (reuse), S (skip).</summary>
    public string Letters => new(_kinds.Select(Letter).ToArray());

    /// <summary>The letter of a step kind: F, C, R or S.</summary>
    public static char Letter(StepKind kind) => kind switch { StepKind.Cache => 'C', StepKind.Reuse => 'R', StepKind.Skip => 'S', _ => 'F' };

    /// <summary>The letters, the boundary and the depth, for messages.</summary>
    public override string ToString() => $"{Letters} (boundary {Boundary}, depth {Depth})";

    /// <summary>The plan as JSON (format <see cref="Format"/>), readable by <see cref="FromJson"/>.</summary>
    public string ToJson()
    {
        var o = new JsonObject
        {
            ["format"] = Format,
            ["steps"] = Steps,
            ["depth"] = Depth,
            ["boundary"] = Boundary,
            ["kinds"] = Letters,
        };
        if (_kinds.Contains(StepKind.Skip))
        {
            o["skip_from"] = SkipFrom;
            o["skip_adds_residual"] = SkipAddsResidual;
        }
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>
    /// Reads a plan written by <see cref="ToJson"/> (or by hand): <c>{"boundary": 20, "kinds": "FFCRCR…"}</c>, where
    /// kinds may also be an array of letters or words (full, cache, reuse). <c>steps</c> and <c>depth</c> are optional
    /// and checked when present. <paramref name="source"/> names the file in errors.
    /// </summary>
    public static StepPlan FromJson(string json, int steps, int depth, string source = "plan")
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new PlanException($"{source}: not valid JSON ({e.Message})");
        }
        if (root is not JsonObject obj)
            throw new PlanException($"{source}: a plan is a JSON object with \"boundary\" and \"kinds\"");
        try
        {
            if (obj["format"] is JsonNode f && f.GetValue<string>() != Format)
                throw new PlanException($"{source}: format '{f.GetValue<string>()}' is not {Format}");
            var kinds = ParseKinds(obj["kinds"] ?? throw new PlanException($"{source}: missing \"kinds\""), source);
            if (obj["steps"] is JsonNode s && s.GetValue<int>() != kinds.Count)
                throw new PlanException($"{source}: \"steps\" is {s.GetValue<int>()} but \"kinds\" lists {kinds.Count} steps");
            if (obj["depth"] is JsonNode d && d.GetValue<int>() != depth)
                throw new PlanException($"{source}: the plan was made for depth {d.GetValue<int>()}, the model has {depth} blocks");
            if (kinds.Count != steps)
                throw new PlanException($"{source}: the plan has {kinds.Count} steps but the run has {steps}");
            int boundary = obj["boundary"]?.GetValue<int>() ?? (kinds.Any(k => k != StepKind.Full)
                ? throw new PlanException($"{source}: missing \"boundary\"") : 0);
            return new StepPlan(kinds, boundary, depth);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new PlanException($"{source}: a field has the wrong JSON type ({e.Message})");
        }
        catch (PlanException e) when (!e.Message.StartsWith(source, StringComparison.Ordinal))
        {
            throw new PlanException($"{source}: {e.Message}");
        }
    }

    private static List<StepKind> ParseKinds(JsonNode node, string source)
    {
        IEnumerable<string> items = node is JsonArray array
            ? array.Select(n => n?.GetValue<string>() ?? "")
            : node.GetValue<string>().Where(c => !char.IsWhiteSpace(c)).Select(c => c.ToString());
        var kinds = new List<StepKind>();
        foreach (string item in items)
        {
            kinds.Add(item.ToLowerInvariant() switch
            {
                "f" or "full" => StepKind.Full,
                "c" or "cache" => StepKind.Cache,
                "r" or "reuse" => StepKind.Reuse,
                "s" or "skip" => throw new PlanException($"{source}: step {kinds.Count} is a Skip (S); Skip steps are decided at run time by an adaptive policy (bwcache, teacache, fbcache) and cannot be replayed from a plan file"),
                _ => throw new PlanException($"{source}: step {kinds.Count} has kind '{item}'; expected F, C or R (full, cache, reuse)"),
            });
        }
        return kinds;
    }

    /// <summary>A picture of the plan for a terminal: the letters grouped by ten with the step numbers above.</summary>
    public string Describe()
    {
        var sb = new StringBuilder();
        sb.Append(Letters).Append('\n');
        sb.Append($"{Steps} steps: {Count(StepKind.Full)} full, {Count(StepKind.Cache)} cache, {Count(StepKind.Reuse)} reuse");
        if (Count(StepKind.Skip) > 0)
            sb.Append($", {Count(StepKind.Skip)} skip (blocks {SkipFrom}–{Depth - 1})");
        if (UsesCache)
            sb.Append(Count(StepKind.Reuse) > 0 ? $"; boundary {Boundary} of {Depth} blocks" : "")
              .Append($"; {BlocksSkipped} of {(long)Steps * Depth} block evaluations skipped");
        return sb.ToString();
    }
}

/// <summary>A plan or policy that cannot be used; the message says what is wrong and where.</summary>
public sealed class PlanException(string message) : BlockDanceException(message);

using System.Globalization;

namespace BlockDance.Dit.Caching;

/// <summary>
/// A rule that decides what each step of a run does. A static policy turns (steps, depth) into a <see cref="StepPlan"/>
/// ahead of the run; a dynamic one (<see cref="IsDynamic"/>, <see cref="AdaptivePolicy"/>) decides each step at run
/// time. Both act through a <see cref="StepController"/> that the run creates for itself (<see cref="CreateController(int, int, int, int)"/>),
/// so policies hold no state of a run and the same policy serves runs of any step count, resolution or batch. Syntax on
/// the command line (<see cref="Parse"/>): <c>none</c>, <c>blockdance:n=2[,boundary=20,start=0.4,end=0.95]</c>,
/// <c>deepcache:n=2[,boundary=14]</c>, <c>plan:FILE.json</c>, <c>bwcache[:delta=0.15,…]</c>, <c>teacache[:threshold=0.1]</c>,
/// <c>fbcache[:threshold=0.08]</c>, <c>ada[:weights=FILE,rho=0.4,threshold=0.5,maxreuse=N]</c>.
/// </summary>
public abstract class CachePolicy
{
    /// <summary>Every accepted form, for help texts and error messages.</summary>
    public const string Syntax =
        "none | blockdance:n=N[,boundary=I,start=A,end=B] | deepcache:n=N[,boundary=I] | plan:FILE.json | " +
        "bwcache[:delta=0.15,refresh=0.1,blocks=all|A-B,tail=0.5,recheck=false] | teacache[:threshold=0.1,poly=C4/C3/C2/C1/C0] | " +
        "fbcache[:threshold=0.08] | ada[:weights=FILE,rho=0.4,threshold=0.5,maxreuse=N]";

    /// <summary>The plan of a static policy for <paramref name="steps"/> steps and <paramref name="depth"/> blocks; a dynamic policy throws <see cref="PlanException"/>.</summary>
    public abstract StepPlan Plan(int steps, int depth);

    /// <summary>True when the policy decides at run time from what the run observes (it has no plan ahead of the run).</summary>
    public virtual bool IsDynamic => false;

    /// <summary>The controller that decides the steps of one run of <paramref name="images"/> images (a static policy: its plan for every image).</summary>
    public virtual StepController CreateController(int steps, int depth, int images) => new PlanController(Plan(steps, depth), images);

    /// <summary>
    /// <see cref="CreateController(int, int, int)"/> for a model whose samples have <paramref name="frames"/> frames (1:
    /// an image model; a video model's clips are the items its decisions are per). A policy that depends on the model's
    /// kind (a learned policy's network is trained for images or for clips of F frames) overrides this one.
    /// </summary>
    public virtual StepController CreateController(int steps, int depth, int images, int frames) => CreateController(steps, depth, images);

    /// <summary>The canonical spelling of this policy (round-trips through <see cref="Parse"/>).</summary>
    public abstract string Spec { get; }

    /// <inheritdoc/>
    public override string ToString() => Spec;

    /// <summary>No cache: every step Full.</summary>
    public static CachePolicy None { get; } = new NoCache();

    /// <summary>Reads a policy from its command-line form (<see cref="Syntax"/>); errors name the problem and list the accepted forms.</summary>
    public static CachePolicy Parse(string spec)
    {
        string s = spec.Trim();
        int colon = s.IndexOf(':', StringComparison.Ordinal);
        string name = (colon < 0 ? s : s[..colon]).ToLowerInvariant();
        string args = colon < 0 ? "" : s[(colon + 1)..];
        switch (name)
        {
            case "none" when args.Length == 0:
                return None;
            case "plan":
                return args.Length > 0 ? new ExplicitPlan(args) : throw Bad(spec, "plan: needs a file name");
            case "blockdance":
            case "deepcache":
            {
                var kv = ParseArgs(spec, args);
                bool bd = name == "blockdance";
                var allowed = bd ? new[] { "n", "boundary", "start", "end" } : new[] { "n", "boundary" };
                foreach (string key in kv.Keys)
                    if (!allowed.Contains(key))
                        throw Bad(spec, $"unknown parameter '{key}' for {name} (allowed: {string.Join(", ", allowed)})");
                int n = kv.TryGetValue("n", out var nv) ? Int(spec, "n", nv) : 2;
                int? boundary = kv.TryGetValue("boundary", out var bv) ? Int(spec, "boundary", bv) : null;
                if (n < 1)
                    throw Bad(spec, $"n must be at least 1, not {n}");
                if (!bd)
                    return new BlockDancePolicy(n, boundary, 0, 1, deepCache: true);
                double start = kv.TryGetValue("start", out var sv) ? Fraction(spec, "start", sv) : 0.4;
                double end = kv.TryGetValue("end", out var ev) ? Fraction(spec, "end", ev) : 0.95;
                if (start >= end)
                    throw Bad(spec, $"start {start} must be below end {end}");
                return new BlockDancePolicy(n, boundary, start, end, deepCache: false);
            }
            case "bwcache":
            {
                var kv = Known(spec, name, ParseArgs(spec, args), "delta", "refresh", "blocks", "tail", "recheck");
                int? first = null, last = null;
                if (kv.TryGetValue("blocks", out var blocks) && blocks != "all")
                {
                    var parts = blocks.Split('-');
                    if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int a)
                        || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int b))
                        throw Bad(spec, $"blocks={blocks} is not 'all' or a range A-B of block indices");
                    (first, last) = (a, b);
                }
                bool recheck = kv.TryGetValue("recheck", out var rc) ? rc switch
                {
                    "true" => true,
                    "false" => false,
                    _ => throw Bad(spec, $"recheck={rc} is not true or false"),
                } : false;
                return Wrap(spec, () => new BwCachePolicy(Number(spec, kv, "delta", 0.15), Number(spec, kv, "refresh", 0.1), first, last,
                    Number(spec, kv, "tail", 0.5), recheck));
            }
            case "teacache":
            {
                var kv = Known(spec, name, ParseArgs(spec, args), "threshold", "poly");
                double[]? poly = kv.TryGetValue("poly", out var pv)
                    ? pv.Split('/').Select(c => double.TryParse(c, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v
                        : throw Bad(spec, $"poly={pv} is not numbers separated by '/' (highest power first)")).ToArray()
                    : null;
                return Wrap(spec, () => new TeaCachePolicy(Number(spec, kv, "threshold", 0.1), poly));
            }
            case "fbcache":
            {
                var kv = Known(spec, name, ParseArgs(spec, args), "threshold");
                return Wrap(spec, () => new FbCachePolicy(Number(spec, kv, "threshold", 0.08)));
            }
            case "ada":
            {
                var kv = Known(spec, name, ParseArgs(spec, args), "weights", "rho", "threshold", "maxreuse");
                double? Optional(string key) => kv.ContainsKey(key) ? Number(spec, kv, key, 0) : null;
                int? maxReuse = kv.TryGetValue("maxreuse", out var mv) ? Int(spec, "maxreuse", mv) : null;
                return Wrap(spec, () => new AdaPolicy(kv.GetValueOrDefault("weights"), Optional("rho"), Optional("threshold"), maxReuse));
            }
            default:
                throw Bad(spec, $"unknown policy '{name}'");
        }
    }

    private static Dictionary<string, string> Known(string spec, string name, Dictionary<string, string> kv, params string[] allowed)
    {
        foreach (string key in kv.Keys)
            if (!allowed.Contains(key))
                throw Bad(spec, $"unknown parameter '{key}' for {name} (allowed: {string.Join(", ", allowed)})");
        return kv;
    }

    private static double Number(string spec, Dictionary<string, string> kv, string key, double fallback) =>
        !kv.TryGetValue(key, out var value) ? fallback
        : double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v
        : throw Bad(spec, $"{key}={value} is not a number");

    private static CachePolicy Wrap(string spec, Func<CachePolicy> create)
    {
        try
        {
            return create();
        }
        catch (PlanException e)
        {
            throw Bad(spec, e.Message);
        }
    }

    private static Dictionary<string, string> ParseArgs(string spec, string args)
    {
        var result = new Dictionary<string, string>();
        if (args.Length == 0)
            return result;
        foreach (string part in args.Split(','))
        {
            int eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || eq == part.Length - 1)
                throw Bad(spec, $"'{part}' is not key=value");
            string key = part[..eq].Trim().ToLowerInvariant();
            if (!result.TryAdd(key, part[(eq + 1)..].Trim()))
                throw Bad(spec, $"'{key}' is given twice");
        }
        return result;
    }

    private static int Int(string spec, string key, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v : throw Bad(spec, $"{key}={value} is not an integer");

    private static double Fraction(string spec, string key, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v >= 0 && v <= 1
            ? v : throw Bad(spec, $"{key}={value} is not a fraction in [0, 1]");

    private static PlanException Bad(string spec, string why) =>
        new($"bad cache policy '{spec}': {why}. Accepted forms: {Syntax}");

    private sealed class NoCache : CachePolicy
    {
        /// <inheritdoc/>
        public override string Spec => "none";
        public override StepPlan Plan(int steps, int depth) => StepPlan.AllFull(steps, depth);
    }
}

/// <summary>
/// BlockDance-N (paper §3.3) and, with a = 0, b = 1 and i = depth/2, the DeepCache-style uniform baseline. The window is
/// <c>k ∈ [ceil(a·S), floor(b·S))</c>; inside it <c>(k − ceil(a·S)) mod N == 0</c> is Cache and every other step is
/// Reuse; outside it every step is Full. Defaults: N = 2, a = 0.4, b = 0.95, i = round(20·depth/28) (20 for 28 blocks).
/// Example, S = 50, N = 2: 20 Full, then C R C R … from k = 20 to 46 (k = 46 is Cache), then Full from k = 47.
/// </summary>
public sealed class BlockDancePolicy : CachePolicy
{
    // a·S is computed in double; 0.7·10 = 7.000000000000001 would otherwise ceil to 8.
    private const double Slack = 1e-9;

    /// <summary>A policy with reuse interval <paramref name="n"/>, an optional fixed boundary, and the window [start, end) as fractions of the steps; <paramref name="deepCache"/> marks the DeepCache-style baseline (for <see cref="Spec"/>).</summary>
    public BlockDancePolicy(int n, int? boundary, double start, double end, bool deepCache = false)
    {
        N = n;
        FixedBoundary = boundary;
        Start = start;
        End = end;
        IsDeepCache = deepCache;
    }

    /// <summary>The reuse interval: one Cache step then N − 1 Reuse steps inside the window.</summary>
    public int N { get; }
    /// <summary>The block boundary i given by the user, or null for the default of <see cref="BoundaryFor"/>.</summary>
    public int? FixedBoundary { get; }
    /// <summary>Start a of the caching window, as a fraction of the steps.</summary>
    public double Start { get; }
    /// <summary>End b (exclusive) of the caching window, as a fraction of the steps.</summary>
    public double End { get; }
    /// <summary>True for the DeepCache-style uniform baseline (window [0, 1), boundary depth/2).</summary>
    public bool IsDeepCache { get; }

    /// <summary>The boundary block i for a model of <paramref name="depth"/> blocks: the fixed one, else depth/2 (DeepCache) or round(20·depth/28) (BlockDance).</summary>
    public int BoundaryFor(int depth) => FixedBoundary ?? (IsDeepCache ? depth / 2 : (int)Math.Round(20.0 * depth / 28.0));

    /// <inheritdoc/>
    public override string Spec => IsDeepCache
        ? $"deepcache:n={N}" + (FixedBoundary is int b ? $",boundary={b}" : "")
        : string.Create(CultureInfo.InvariantCulture, $"blockdance:n={N}") + (FixedBoundary is int bb ? $",boundary={bb}" : "")
          + string.Create(CultureInfo.InvariantCulture, $",start={Start},end={End}");

    /// <inheritdoc/>
    public override StepPlan Plan(int steps, int depth)
    {
        if (steps < 1)
            throw new PlanException($"steps must be positive, not {steps}");
        int first = (int)Math.Ceiling(Start * steps - Slack);
        int last = (int)Math.Floor(End * steps + Slack); // exclusive
        var kinds = new StepKind[steps];
        for (int k = 0; k < steps; k++)
            kinds[k] = k < first || k >= last ? StepKind.Full : (k - first) % N == 0 ? StepKind.Cache : StepKind.Reuse;
        return new StepPlan(kinds, BoundaryFor(depth), depth);
    }
}

/// <summary>A plan read from a JSON file (<see cref="StepPlan.FromJson"/>), checked against the run's steps and depth.</summary>
public sealed class ExplicitPlan(string path) : CachePolicy
{
    /// <summary>The plan file's path as given.</summary>
    public string Path { get; } = path;
    /// <inheritdoc/>
    public override string Spec => "plan:" + Path;

    /// <inheritdoc/>
    public override StepPlan Plan(int steps, int depth)
    {
        string json;
        try
        {
            json = File.ReadAllText(Path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PlanException($"cannot read plan file '{Path}': {e.Message}");
        }
        return StepPlan.FromJson(json, steps, depth, Path);
    }
}

/// <summary>A plan given as an object (tests, warm-ups, adaptive policies that decide ahead of a run).</summary>
public sealed class FixedPlan(StepPlan plan) : CachePolicy
{
    /// <summary>The plan every run of this policy uses.</summary>
    public StepPlan StepPlan { get; } = plan;
    /// <inheritdoc/>
    public override string Spec => $"fixed:{StepPlan.Letters}@{StepPlan.Boundary}";

    /// <inheritdoc/>
    public override StepPlan Plan(int steps, int depth) =>
        steps == StepPlan.Steps && depth == StepPlan.Depth ? StepPlan
            : throw new PlanException($"the fixed plan has {StepPlan.Steps} steps for depth {StepPlan.Depth}; the run has {steps} steps and {depth} blocks");
}

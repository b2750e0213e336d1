using BlockDance.Dit.Caching;
using Xunit;

namespace BlockDance.Tests.Caching;

public sealed class PlanTests
{
    [Fact]
    public void BlockDance_2_over_50_steps_is_the_documented_plan()
    {
        var plan = CachePolicy.Parse("blockdance:n=2").Plan(50, 28);
        // 20 Full, then C R C R … from k = 20 to 46 (k = 46 is Cache), then Full from k = 47.
        Assert.Equal(new string('F', 20) + string.Concat(Enumerable.Repeat("CR", 13)) + "C" + "FFF", plan.Letters);
        Assert.Equal(20, plan.Boundary);
        Assert.Equal(StepKind.Cache, plan[46]);
        Assert.Equal(StepKind.Full, plan[47]);
    }

    [Theory]
    [InlineData(3, 50, "FFFFFFFFFFFFFFFFFFFFCRRCRRCRRCRRCRRCRRCRRCRRCRRFFF")]
    [InlineData(4, 50, "FFFFFFFFFFFFFFFFFFFFCRRRCRRRCRRRCRRRCRRRCRRRCRRFFF")]
    [InlineData(2, 20, "FFFFFFFFCRCRCRCRCRCF")]
    [InlineData(2, 30, "FFFFFFFFFFFFCRCRCRCRCRCRCRCRFF")]
    public void BlockDance_window_and_groups_follow_the_definition(int n, int steps, string expected)
    {
        var plan = new BlockDancePolicy(n, null, 0.4, 0.95).Plan(steps, 28);
        Assert.Equal(expected, plan.Letters);
        // Independent restatement: window [ceil(0.4 S), floor(0.95 S)), Cache where (k − start) mod N == 0.
        int start = (int)Math.Ceiling(0.4 * steps - 1e-9), end = (int)Math.Floor(0.95 * steps + 1e-9);
        for (int k = 0; k < steps; k++)
            Assert.Equal(k < start || k >= end ? 'F' : (k - start) % n == 0 ? 'C' : 'R', plan.Letters[k]);
    }

    [Fact]
    public void BlockDance_100_steps()
    {
        var plan = CachePolicy.Parse("blockdance:n=2").Plan(100, 28);
        Assert.Equal(40, plan.Letters.IndexOf('C', StringComparison.Ordinal));
        Assert.Equal(94, plan.Letters.LastIndexOf('C'));
        Assert.Equal(new string('F', 5), plan.Letters[95..]);
        Assert.Equal(27, plan.Count(StepKind.Reuse));
    }

    [Fact]
    public void Boundary_defaults_scale_with_depth()
    {
        Assert.Equal(20, new BlockDancePolicy(2, null, 0.4, 0.95).BoundaryFor(28));
        Assert.Equal(9, new BlockDancePolicy(2, null, 0.4, 0.95).BoundaryFor(12));   // round(20·12/28) = round(8.57)
        Assert.Equal(14, ((BlockDancePolicy)CachePolicy.Parse("deepcache:n=2")).BoundaryFor(28));
        var deep = CachePolicy.Parse("deepcache:n=3").Plan(10, 12);
        Assert.Equal("CRRCRRCRRC", deep.Letters);
        Assert.Equal(6, deep.Boundary);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(28)]
    [InlineData(-1)]
    public void Boundary_zero_and_depth_are_rejected(int boundary)
    {
        var e = Assert.Throws<PlanException>(() => CachePolicy.Parse($"blockdance:n=2,boundary={boundary}").Plan(50, 28));
        Assert.Contains("boundary", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("blockdance:n=0", "n must be at least 1")]
    [InlineData("blockdance:n=2,start=0.9,end=0.5", "below end")]
    [InlineData("blockdance:m=2", "unknown parameter 'm'")]
    [InlineData("deepcache:n=2,start=0.1", "unknown parameter 'start'")]
    [InlineData("magcache:0.2", "unknown policy 'magcache'")]
    [InlineData("blockdance:n=two", "not an integer")]
    [InlineData("blockdance:n=2,n=3", "given twice")]
    [InlineData("blockdance:start=1.5", "not a fraction")]
    [InlineData("plan:", "needs a file")]
    public void Bad_policy_syntax_shows_the_accepted_forms(string spec, string why)
    {
        var e = Assert.Throws<PlanException>(() => CachePolicy.Parse(spec));
        Assert.Contains(why, e.Message, StringComparison.Ordinal);
        Assert.Contains(CachePolicy.Syntax, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Policies_round_trip_through_their_spec()
    {
        foreach (string s in new[] { "none", "blockdance:n=3,boundary=8,start=0.2,end=0.9", "deepcache:n=2,boundary=5" })
            Assert.Equal(CachePolicy.Parse(s).Plan(30, 12).Letters, CachePolicy.Parse(CachePolicy.Parse(s).Spec).Plan(30, 12).Letters);
    }

    [Fact]
    public void Json_plans_round_trip_and_are_validated()
    {
        var plan = CachePolicy.Parse("blockdance:n=2").Plan(50, 28);
        var back = StepPlan.FromJson(plan.ToJson(), 50, 28);
        Assert.Equal(plan.Letters, back.Letters);
        Assert.Equal(plan.Boundary, back.Boundary);

        var words = StepPlan.FromJson("""{"boundary": 2, "kinds": ["full", "cache", "reuse", "F"]}""", 4, 4);
        Assert.Equal("FCRF", words.Letters);

        Assert.Contains("no earlier step fills it", Assert.Throws<PlanException>(() => StepPlan.FromJson("""{"boundary": 2, "kinds": "FRCF"}""", 4, 4, "p.json")).Message, StringComparison.Ordinal);
        Assert.Contains("has 3 steps but the run has 4", Assert.Throws<PlanException>(() => StepPlan.FromJson("""{"boundary": 2, "kinds": "FCR"}""", 4, 4, "p.json")).Message, StringComparison.Ordinal);
        Assert.Contains("out of range", Assert.Throws<PlanException>(() => StepPlan.FromJson("""{"boundary": 4, "kinds": "FCRF"}""", 4, 4, "p.json")).Message, StringComparison.Ordinal);
        Assert.Contains("kind 'X'", Assert.Throws<PlanException>(() => StepPlan.FromJson("""{"boundary": 2, "kinds": "FCXF"}""", 4, 4, "p.json")).Message, StringComparison.Ordinal);
        Assert.Contains("not valid JSON", Assert.Throws<PlanException>(() => StepPlan.FromJson("{boundary", 4, 4, "p.json")).Message, StringComparison.Ordinal);
        Assert.Contains("made for depth 28", Assert.Throws<PlanException>(() => StepPlan.FromJson(plan.ToJson(), 50, 12, "p.json")).Message, StringComparison.Ordinal);
        Assert.StartsWith("p.json: ", Assert.Throws<PlanException>(() => StepPlan.FromJson("""{"boundary": "x", "kinds": "FCRF"}""", 4, 4, "p.json")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Explicit_plan_file_is_read_and_a_missing_file_is_reported()
    {
        using var dir = new Fixtures.TempDir();
        string path = dir.File("plan.json");
        File.WriteAllText(path, """{"boundary": 3, "kinds": "FCRRCF"}""");
        Assert.Equal("FCRRCF", CachePolicy.Parse("plan:" + path).Plan(6, 12).Letters);
        var e = Assert.Throws<PlanException>(() => CachePolicy.Parse("plan:" + dir.File("nope.json")).Plan(6, 12));
        Assert.Contains("cannot read plan file", e.Message, StringComparison.Ordinal);
    }
}

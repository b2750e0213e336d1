namespace BlockDance.Kernels.Harness;

/// <summary>
/// The harness's shared helpers: deterministic test data, the comparison, and the scalar functions of the naive
/// references (double precision, no code shared with the backends). Each op's naive loop reference sits next to its
/// case in <see cref="OpCases"/>.
/// </summary>
public static class NaiveReference
{

    /// <summary>GELU, tanh approximation.</summary>
    public static double GeluTanh(double x) => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

    /// <summary>x·σ(x).</summary>
    public static double Silu(double x) => x / (1 + Math.Exp(-x));

    /// <summary>f applied to every element, in double.</summary>
    public static float[] Map(float[] x, Func<double, double> f) => x.Select(v => (float)f(v)).ToArray();

    /// <summary>Max |a − b| / max |b| (the dump comparison), with a short report of the worst element.</summary>
    public static (double Rel, string Report) Compare(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        if (actual.Length != expected.Length)
            return (double.PositiveInfinity, $"lengths differ: {actual.Length} vs {expected.Length}");
        double maxAbs = 0, maxRef = 0;
        int worst = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double d = Math.Abs((double)actual[i] - expected[i]);
            if (!double.IsFinite(d))
                return (double.PositiveInfinity, $"non-finite at {i}: {actual[i]} vs {expected[i]}");
            if (d > maxAbs) { maxAbs = d; worst = i; }
            maxRef = Math.Max(maxRef, Math.Abs(expected[i]));
        }
        double rel = maxRef == 0 ? maxAbs : maxAbs / maxRef;
        return (rel, $"max abs {maxAbs:E3} at {worst} ({actual[worst]} vs {expected[worst]}), max |ref| {maxRef:E3}, rel {rel:E3}");
    }

    /// <summary>Deterministic test data in [−scale, scale).</summary>
    public static float[] Random(int n, int seed, float scale = 1f)
    {
        var rng = new System.Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++)
            a[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
        return a;
    }
}

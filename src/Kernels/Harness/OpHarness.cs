using System.Diagnostics;
using System.Globalization;
using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;

namespace BlockDance.Kernels.Harness;

/// <summary>The outcome of checking one case at one shape on one backend.</summary>
/// <param name="Passed">Every output within tolerance, guards intact, no NaN or infinity.</param>
/// <param name="Worst">The largest max|a−b|/max|ref| over the outputs (∞ when a check failed before comparing).</param>
/// <param name="Message">The first failure, or the worst comparison's report.</param>
public sealed record OpCheckResult(bool Passed, double Worst, string Message);

/// <summary>The timing of one case at one shape on one backend.</summary>
/// <param name="Milliseconds">Median over the timed runs (CUDA events on a CUDA device, the wall clock on the CPU).</param>
/// <param name="Flops">Arithmetic of one run.</param>
/// <param name="Bytes">Memory traffic of one run.</param>
public sealed record OpTiming(double Milliseconds, double Flops, double Bytes)
{
    /// <summary>Achieved bandwidth.</summary>
    public double GBs => Bytes / Milliseconds / 1e6;

    /// <summary>Achieved arithmetic rate.</summary>
    public double GFlops => Flops / Milliseconds / 1e6;
}

/// <summary>
/// The op harness, after ggml's test-backend-ops: runs an <see cref="OpCase"/> on a backend and checks every output
/// against the naive reference (guard regions, NaN/Inf, a tolerance per storage type), or times it. The xunit op tests,
/// <c>blockdance test-ops</c> and <c>blockdance bench ops</c> all run through here.
/// </summary>
public static class OpHarness
{
    /// <summary>
    /// Largest allowed max|a−b|/max|ref| for an output in <paramref name="type"/>: F32 2e-5; F16 4e-3 (≈ 8 units of
    /// f16's 2⁻¹¹ rounding); BF16 3e-2 (≈ 8 units of bf16's 2⁻⁸), against the double-precision reference on inputs already
    /// rounded to the storage type.
    /// </summary>
    public static double Tolerance(DType type) => type switch
    {
        DType.F32 => 2e-5,
        DType.F16 => 4e-3,
        _ => 3e-2,
    };

    /// <summary>Runs the case once and checks it; throws <see cref="OpCheckException"/> naming the op, shape and element on a failure.</summary>
    public static void Verify(IOps ops, string op, params double[] shape)
    {
        var result = Check(ops, OpCases.Get(op), shape);
        if (!result.Passed)
            throw new OpCheckException(result.Message);
    }

    /// <summary>Runs the case once on <paramref name="ops"/> and checks every output.</summary>
    public static OpCheckResult Check(IOps ops, OpCase op, double[] shape)
    {
        ValidateShape(op, shape);
        using var ctx = new OpContext(ops);
        var run = op.Setup(ctx, shape);
        run.Run();
        double worst = 0;
        string report = "";
        foreach (var check in run.Checks)
        {
            try
            {
                double tol = check.Tolerance?.Invoke(Tolerance(ops.ActivationType)) ?? Tolerance(ops.ActivationType);
                double rel = AssertClose(check.Expected(), ctx.Read(check.Output), check.What, tol, out string r);
                if (rel >= worst)
                    (worst, report) = (rel, r);
            }
            catch (OpCheckException e)
            {
                return new OpCheckResult(false, double.PositiveInfinity, $"{op.Name} {Format(shape)} on {Describe(ops)}: {e.Message}");
            }
        }
        return new OpCheckResult(true, worst, report);
    }

    /// <summary>
    /// Two criteria: the dump comparison max|a−b| / max|ref| ≤ tol, and per element |a−b| ≤ tol·(rms(ref) + |ref|)
    /// (atol + rtol·|ref| with atol scaled to the data), so a small element with the wrong sign fails too. Returns the
    /// relative error; throws <see cref="OpCheckException"/> when a criterion fails.
    /// </summary>
    public static double AssertClose(float[] expected, float[] actual, string what, double tolerance, out string report)
    {
        var (rel, r) = NaiveReference.Compare(actual, expected);
        report = $"{what}: {r}; tolerance {tolerance:E1}";
        if (!(rel <= tolerance))
            throw new OpCheckException($"{what}: {r}; tolerance {tolerance:E1} ({rel / tolerance:P0} used)");
        double rms = expected.Length == 0 ? 0 : Math.Sqrt(expected.Average(v => (double)v * v));
        for (int i = 0; i < expected.Length; i++)
        {
            double diff = Math.Abs((double)actual[i] - expected[i]), bound = tolerance * (rms + Math.Abs(expected[i]));
            if (diff > bound)
                throw new OpCheckException($"{what}: element {i} is {actual[i]}, expected {expected[i]} (|diff| {diff:E3} > {bound:E3} = tol·(rms {rms:E3} + |ref|))");
        }
        return rel;
    }

    /// <summary>Times the case: one untimed run (module load, workspace growth), then the median of <paramref name="repeat"/> runs.</summary>
    public static OpTiming Perf(IOps ops, OpCase op, double[] shape, int repeat)
    {
        ValidateShape(op, shape);
        ArgumentOutOfRangeException.ThrowIfLessThan(repeat, 1);
        using var ctx = new OpContext(ops);
        var run = op.Setup(ctx, shape);
        run.Run();
        var times = new double[repeat];
        if (ops.Device is CudaDevice cuda)
        {
            using var timer = new CudaTimer(cuda);
            for (int i = 0; i < repeat; i++)
            {
                timer.Start();
                run.Run();
                times[i] = timer.Stop();
            }
        }
        else
        {
            for (int i = 0; i < repeat; i++)
            {
                long start = Stopwatch.GetTimestamp();
                run.Run();
                ops.Device.Synchronize();
                times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }
        Array.Sort(times);
        return new OpTiming(times[repeat / 2], run.Flops, run.Bytes);
    }

    /// <summary>Parses <c>2,256,1152</c> (or <c>2x256x1152</c>) into shape numbers.</summary>
    public static double[] ParseShape(string text) =>
        text.Split([',', 'x', '×'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(p => double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v
                : throw new ArgumentException($"shape '{text}': '{p}' is not a number"))
            .ToArray();

    /// <summary>The shape as the command line writes it.</summary>
    public static string Format(double[] shape) => string.Join(',', shape.Select(v => v.ToString("G", CultureInfo.InvariantCulture)));

    /// <summary>The backend as a short label: device name and storage type.</summary>
    public static string Describe(IOps ops) => $"{ops.Device.Name} {ops.ActivationType.ShortName()}";

    private static void ValidateShape(OpCase op, double[] shape)
    {
        int required = op.Shape.Split('[')[0].Split(',', StringSplitOptions.RemoveEmptyEntries).Length;
        int most = op.Shape.Replace("[", "", StringComparison.Ordinal).Replace("]", "", StringComparison.Ordinal).Split(',', StringSplitOptions.RemoveEmptyEntries).Length;
        if (shape.Length < required || shape.Length > most)
            throw new ArgumentException($"{op.Name}: shape {Format(shape)} does not match {op.Shape}");
        for (int i = 0; i < shape.Length; i++)
            if (!double.IsFinite(shape[i]) || shape[i] < 0 || (i < required && shape[i] != Math.Floor(shape[i])))
                throw new ArgumentException($"{op.Name}: shape {Format(shape)} ({op.Shape}): number {i + 1} must be a non-negative integer");
    }
}

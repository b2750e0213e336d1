using BlockDance.Runtime;

namespace BlockDance.Kernels.Harness;

/// <summary>An op's output that failed a check: guard region written, non-finite value, or too far from the reference.</summary>
/// <param name="message">What failed, naming the op, the shape and the element.</param>
public sealed class OpCheckException(string message) : BlockDanceException(message);

/// <summary>
/// The operands of one op case on one backend, in the style of ggml's test-backend-ops: inputs from a fixed seed rounded
/// to the backend's storage type (so the reference sees exactly what the backend sees), outputs surrounded by sentinel
/// guard regions that must come back untouched. Owns every tensor it makes.
/// </summary>
public sealed class OpContext(IOps ops) : IDisposable
{
    /// <summary>Elements of sentinel on each side of every output.</summary>
    public const int Guard = 37;

    private static readonly float s_sentinel = BitConverter.Int32BitsToSingle(0x7FC0DEAD);
    private readonly List<Tensor> _owned = [];
    private readonly List<Tensor> _guarded = [];

    /// <summary>The backend under test.</summary>
    public IOps Ops => ops;

    /// <summary>Its device.</summary>
    public Device Device => ops.Device;

    /// <summary>Its storage type of activations.</summary>
    public DType Type => ops.ActivationType;

    /// <summary>Deterministic data in [−scale, scale) (<see cref="NaiveReference.Random"/>), rounded to the storage type.</summary>
    public float[] Random(int n, int seed, float scale = 1f) => Stored(NaiveReference.Random(n, seed, scale));

    /// <summary>Values rounded to the storage type, as the backend will see them.</summary>
    public float[] Stored(float[] values)
    {
        using var t = Device.FromFloats(values, Type, values.Length);
        return t.ToFloatArray();
    }

    /// <summary>An input tensor of the storage type holding <paramref name="values"/>.</summary>
    public Tensor Input(float[] values, params int[] shape) => Own(Device.FromFloats(values, Type, shape));

    /// <summary>An input tensor of another type (timesteps F32, ids I32).</summary>
    public Tensor Input<T>(T[] values, DType type, params int[] shape) where T : unmanaged => Own(Device.FromHost<T>(values, type, shape));

    /// <summary>An output tensor of the storage type with sentinel guard regions on both sides (checked by <see cref="Read"/>).</summary>
    public Tensor Output(params int[] shape) => Output(Type, shape);

    /// <summary>An output tensor of <paramref name="type"/> with guard regions.</summary>
    public Tensor Output(DType type, params int[] shape)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        var whole = Own(Device.FromFloats(Enumerable.Repeat(s_sentinel, checked((int)n + 2 * Guard)).ToArray(), type, (int)n + 2 * Guard));
        _guarded.Add(whole);
        return whole.View(Guard, shape);
    }

    /// <summary>A guarded output that starts as <paramref name="values"/> (for ops that update in place).</summary>
    public Tensor InOut(float[] values, params int[] shape) => InOut(values, Type, shape);

    /// <summary>A guarded output of <paramref name="type"/> that starts as <paramref name="values"/> (an F32 accumulator).</summary>
    public Tensor InOut(float[] values, DType type, params int[] shape)
    {
        var y = Output(type, shape);
        using (var src = Device.FromFloats(values, type, shape))
            Device.Copy(src, y);
        return y;
    }

    /// <summary>The output's values, after checking its guards and that it holds no NaN or infinity.</summary>
    public float[] Read(Tensor output)
    {
        var whole = _guarded.Single(g => output.Address >= g.Address && output.Address < g.Address + (nint)g.ByteCount);
        var all = whole.ToFloatArray();
        long offset = (output.Address - whole.Address) / output.DType.SizeOf();
        float sentinel = AsStored(s_sentinel, output.DType);
        for (long i = 0; i < all.Length; i++)
        {
            bool inside = i >= offset && i < offset + output.Count;
            if (!inside && BitConverter.SingleToInt32Bits(all[i]) != BitConverter.SingleToInt32Bits(sentinel))
                throw new OpCheckException($"guard region overwritten at element {i - offset} relative to the output {output.ShapeString}");
            if (inside && !float.IsFinite(all[i]))
                throw new OpCheckException($"non-finite output {all[i]} at element {i - offset} of {output.ShapeString}");
        }
        return all.AsSpan((int)offset, (int)output.Count).ToArray();
    }

    private float AsStored(float v, DType type)
    {
        using var t = Device.FromFloats([v], type, 1);
        return t.ToFloatArray()[0];
    }

    private Tensor Own(Tensor t)
    {
        _owned.Add(t);
        return t;
    }

    /// <summary>Frees every tensor of the case.</summary>
    public void Dispose()
    {
        foreach (var t in _owned)
            t.Dispose();
        _owned.Clear();
        _guarded.Clear();
    }
}

/// <summary>One output of a case and how to check it.</summary>
/// <param name="What">Names the op and shape in failure messages.</param>
/// <param name="Output">A guarded output from <see cref="OpContext.Output(int[])"/>.</param>
/// <param name="Expected">The naive reference (computed only when checking).</param>
/// <param name="Tolerance">Maps the storage type's tolerance to this output's (null: unchanged).</param>
public sealed record OpCheck(string What, Tensor Output, Func<float[]> Expected, Func<double, double>? Tolerance = null);

/// <summary>A case set up on one backend: the op call(s) to run (and time), the outputs to check, and the napkin math.</summary>
/// <param name="Run">The op call(s), queued on the backend's stream.</param>
/// <param name="Checks">The outputs and their references.</param>
/// <param name="Flops">Arithmetic of one <paramref name="Run"/> (0 for pure data movement).</param>
/// <param name="Bytes">Memory traffic of one <paramref name="Run"/> (every operand read or written once).</param>
public sealed record OpRun(Action Run, IReadOnlyList<OpCheck> Checks, double Flops, double Bytes);

/// <summary>
/// One op (or op variant) of the harness: its name on the command line, the meaning of its shape numbers, the shapes the
/// tests run, one realistic DiT-XL/2 shape for the benchmark, and how to set it up on a backend.
/// </summary>
/// <param name="Name">snake_case, as <c>--op</c> takes it (e.g. <c>layernorm_modulate</c>).</param>
/// <param name="Shape">The meaning of the shape numbers, e.g. <c>B,T,D[,eps]</c>.</param>
/// <param name="TestShapes">Odd and DiT-sized shapes for the correctness checks (the first is the smallest).</param>
/// <param name="BenchShape">The DiT-XL/2 shape for the perf mode (batch 2 = one image with guidance, 256×256).</param>
/// <param name="Setup">Makes the operands on a backend and returns what to run and check.</param>
public sealed record OpCase(string Name, string Shape, double[][] TestShapes, double[] BenchShape, Func<OpContext, double[], OpRun> Setup)
{
    /// <summary>Shape number <paramref name="i"/> as an int, or <paramref name="fallback"/> when absent.</summary>
    public static int Int(double[] s, int i, int? fallback = null) =>
        i < s.Length ? (int)s[i] : fallback ?? throw new ArgumentException($"shape {string.Join(',', s)} lacks number {i + 1}");
}

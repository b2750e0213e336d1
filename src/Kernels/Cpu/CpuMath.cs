using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace BlockDance.Kernels.Cpu;

/// <summary>Scalar and vector math shared by the CPU kernels (float32, written to match PyTorch's float32 formulas).</summary>
internal static unsafe class CpuMath
{
    /// <summary>√(2/π), PyTorch's <c>kBeta = M_SQRT2 * M_2_SQRTPI * 0.5</c>.</summary>
    public const float GeluBeta = 0.7978845608028654f;
    public const float GeluKappa = 0.044715f;
    /// <summary>−2·√(2/π)·log2(e): the vector forms take e^(−2u) as 2^(GeluExp2Beta·(x + κx³)).</summary>
    private const float GeluExp2Beta = (float)(-2 * 0.7978845608028654 * 1.4426950408889634);

    /// <summary>
    /// <c>0.5·x·(1 + tanh(u))</c> with <c>u = √(2/π)·(x + 0.044715·x³)</c>, evaluated as <c>x / (1 + exp(−2u))</c>
    /// (the identity ½(1 + tanh u) = σ(2u)), which vectorises with one exponential (a power of two in the vector forms).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float GeluTanh(float x)
    {
        float inner = GeluBeta * (x + GeluKappa * (x * x * x));
        return x / (1f + MathF.Exp(-2f * inner));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Silu(float x) => x / (1f + MathF.Exp(-x));

    // The vector forms below compute the same bits in every lane at either width (the same operations in the same
    // order, fused multiply-adds written out), so a result does not depend on the vector width that produced it.

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> GeluTanh(Vector256<float> x)
    {
        var t = Vector256.Create(GeluExp2Beta) * Vector256.FusedMultiplyAdd(Vector256.Create(GeluKappa), x * x * x, x);
        return x / (Vector256<float>.One + Exp2(t));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> GeluTanh(Vector512<float> x)
    {
        var t = Vector512.Create(GeluExp2Beta) * Vector512.FusedMultiplyAdd(Vector512.Create(GeluKappa), x * x * x, x);
        return x / (Vector512<float>.One + Exp2(t));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Silu(Vector256<float> x) => x / (Vector256<float>.One + Exp2(x * Vector256.Create(-Log2E)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Silu(Vector512<float> x) => x / (Vector512<float>.One + Exp2(x * Vector512.Create(-Log2E)));

    /// <summary>
    /// <c>y[j] = act(y[j] + bias[j])</c> for j &lt; n, in place (no bias: <c>act(y[j])</c>): 16 lanes at a time where the
    /// CPU has 512-bit vectors, then 8, then one; the vector widths give the same bits. The GEMM's epilogue (a row of
    /// its tile) and the OpenBLAS path's bias and activation both come here.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void BiasActivate(float* y, float* bias, int n, Activation act)
    {
        if (bias is null && act == Activation.None)
            return;
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i + 16 <= n; i += 16)
            {
                var v = Vector512.Load(y + i);
                if (bias is not null)
                    v += Vector512.Load(bias + i);
                (act switch { Activation.GeluTanh => GeluTanh(v), Activation.Silu => Silu(v), _ => v }).Store(y + i);
            }
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= n; i += 8)
            {
                var v = Vector256.Load(y + i);
                if (bias is not null)
                    v += Vector256.Load(bias + i);
                (act switch { Activation.GeluTanh => GeluTanh(v), Activation.Silu => Silu(v), _ => v }).Store(y + i);
            }
        for (; i < n; i++)
        {
            float v = bias is null ? y[i] : y[i] + bias[i];
            y[i] = act switch { Activation.GeluTanh => GeluTanh(v), Activation.Silu => Silu(v), _ => v };
        }
    }

    /// <summary>log2(e).</summary>
    public const float Log2E = 1.44269504088896341f;

    // 2^x: n = round(x), f = x − n (exact), 2^f by a degree-6 minimax polynomial on [−½, ½] (relative error under
    // 1.4 ulp in float), times 2^n: no Cody–Waite reduction and no select, about half the instructions of an exp.
    // Attention's softmax takes it (its scores are scaled by log2 e, as flash attention does), GELU (e^(−2u) =
    // 2^(−2·log2(e)·u)) and SiLU (e^(−x) = 2^(−log2(e)·x)).
    // - Exp2: x clamped to [−127, 128], 2^n built from the exponent bits: 0 below −126.5 (where 2^x would be
    //   subnormal), +∞ from 127.5 on (a little before float's own overflow at 128); the same bits at both widths.
    // - Exp2NonPositive, for x ≤ 0 (the softmax's shifted scores): clamped at −127 only, and at 16 lanes 2^n applied by
    //   vscalefps (one instruction for four): below −126.5 a subnormal there and 0 at 8 lanes, elsewhere the same bits.
    private const float E0 = 6.931471825e-01f, E1 = 2.402264625e-01f, E2 = 5.550328642e-02f, E3 = 9.618489072e-03f, E4 = 1.339993090e-03f, E5 = 1.534581243e-04f;

    /// <summary>2^f for |f| ≤ ½, 8 lanes: the polynomial (see above).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Exp2Fraction(Vector256<float> f)
    {
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(E5), f, Vector256.Create(E4));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(E3));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(E2));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(E1));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(E0));
        return Vector256.FusedMultiplyAdd(p, f, Vector256<float>.One);
    }

    /// <summary>2^f for |f| ≤ ½, 16 lanes: the 8-lane form's operations, lane for lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Exp2Fraction(Vector512<float> f)
    {
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(E5), f, Vector512.Create(E4));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(E3));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(E2));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(E1));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(E0));
        return Vector512.FusedMultiplyAdd(p, f, Vector512<float>.One);
    }

    /// <summary>2^x for 8 lanes (see above).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp2(Vector256<float> x)
    {
        x = Vector256.Min(Vector256.Max(x, Vector256.Create(-127f)), Vector256.Create(128f));
        var n = Vector256.Round(x);
        return Exp2Fraction(x - n) * ((Vector256.ConvertToInt32(n) + Vector256.Create(127)) << 23).AsSingle();
    }

    /// <summary>2^x for 16 lanes: the 8-lane form's operations, lane for lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp2(Vector512<float> x)
    {
        x = Vector512.Min(Vector512.Max(x, Vector512.Create(-127f)), Vector512.Create(128f));
        var n = Vector512.Round(x);
        return Exp2Fraction(x - n) * ((Vector512.ConvertToInt32(n) + Vector512.Create(127)) << 23).AsSingle();
    }

    /// <summary>2^x for x ≤ 0, 8 lanes (see above).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp2NonPositive(Vector256<float> x)
    {
        x = Vector256.Max(x, Vector256.Create(-127f));
        var n = Vector256.Round(x);
        return Exp2Fraction(x - n) * ((Vector256.ConvertToInt32(n) + Vector256.Create(127)) << 23).AsSingle();
    }

    /// <summary>2^x for x ≤ 0, 16 lanes: 2^n applied by vscalefps.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp2NonPositive(Vector512<float> x)
    {
        x = Vector512.Max(x, Vector512.Create(-127f));
        var n = Vector512.Round(x);
        return System.Runtime.Intrinsics.X86.Avx512F.Scale(Exp2Fraction(x - n), n);
    }
}

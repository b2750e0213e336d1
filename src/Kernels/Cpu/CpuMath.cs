using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace BlockDance.Kernels.Cpu;

/// <summary>Scalar and vector math shared by the CPU kernels (float32, written to match PyTorch's float32 formulas).</summary>
internal static unsafe class CpuMath
{
    /// <summary>√(2/π), PyTorch's <c>kBeta = M_SQRT2 * M_2_SQRTPI * 0.5</c>.</summary>
    public const float GeluBeta = 0.7978845608028654f;
    public const float GeluKappa = 0.044715f;

    /// <summary>
    /// <c>0.5·x·(1 + tanh(u))</c> with <c>u = √(2/π)·(x + 0.044715·x³)</c>, evaluated as <c>x / (1 + exp(−2u))</c>
    /// (the identity ½(1 + tanh u) = σ(2u)), which vectorises with one exponential.
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
        var inner = Vector256.Create(GeluBeta) * Vector256.FusedMultiplyAdd(Vector256.Create(GeluKappa), x * x * x, x);
        return x / (Vector256<float>.One + Exp(Vector256.Create(-2f) * inner));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> GeluTanh(Vector512<float> x)
    {
        var inner = Vector512.Create(GeluBeta) * Vector512.FusedMultiplyAdd(Vector512.Create(GeluKappa), x * x * x, x);
        return x / (Vector512<float>.One + Exp(Vector512.Create(-2f) * inner));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Silu(Vector256<float> x) => x / (Vector256<float>.One + Exp(-x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Silu(Vector512<float> x) => x / (Vector512<float>.One + Exp(-x));

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

    // exp(x): range reduction x = n·ln2 + r (Cody–Waite: ln2 split into a part exact in float and a correction) and a
    // degree-6 polynomial; relative error about 2 ulp where the result is a normal float. Inputs below −87.3 flush to
    // 0; 2^n is built from the exponent bits, so from x ≈ 88.03 on (n = 128) the result is +∞, a little before float's
    // own overflow at 88.72 (harmless here: softmax takes exp of x − max ≤ 0, GELU and SiLU divide by 1 + exp).
    private const float ExpLo = -87.33654f, ExpHi = 88.72283f, Log2E = 1.44269504088896341f, Ln2Hi = 0.693359375f, Ln2Lo = -2.12194440e-4f;
    private const float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f, P3 = 4.1665795894e-2f, P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;

    /// <summary>exp(x) for 8 lanes (see above).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        x = Vector256.Min(Vector256.Max(x, Vector256.Create(ExpLo)), Vector256.Create(ExpHi));
        var n = Vector256.Round(x * Vector256.Create(Log2E));
        var r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Hi), x);
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Lo), r);
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(P0), r, Vector256.Create(P1));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P2));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P3));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P4));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P5));
        p = Vector256.FusedMultiplyAdd(p, r * r, r) + Vector256<float>.One;
        var scale = ((Vector256.ConvertToInt32(n) + Vector256.Create(127)) << 23).AsSingle();
        return Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(-87.3365f)), Vector256<float>.Zero, p * scale);
    }

    /// <summary>exp(x) for 16 lanes: the 8-lane form's operations, lane for lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        x = Vector512.Min(Vector512.Max(x, Vector512.Create(ExpLo)), Vector512.Create(ExpHi));
        var n = Vector512.Round(x * Vector512.Create(Log2E));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Hi), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Lo), r);
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(P0), r, Vector512.Create(P1));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P2));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P5));
        p = Vector512.FusedMultiplyAdd(p, r * r, r) + Vector512<float>.One;
        var scale = ((Vector512.ConvertToInt32(n) + Vector512.Create(127)) << 23).AsSingle();
        return Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(-87.3365f)), Vector512<float>.Zero, p * scale);
    }

    // 2^x for softmax's shifted scores, x ≤ 0 (attention scales its scores by log2(e) so that exp becomes exp2, as
    // flash attention does): n = round(x), f = x − n (exact), 2^f by a degree-6 minimax polynomial on [−½, ½] (relative
    // error under 1.4 ulp in float), times 2^n. x is clamped at −127 first, so −∞ and NaN-free underflow give 0 at 8
    // lanes (2^n from the exponent bits) and at most 2^−127·p, a subnormal, at 16 (vscalefps): beside the row's largest
    // term, 1, neither counts. The widths differ only there.
    private const float E0 = 6.931471825e-01f, E1 = 2.402264625e-01f, E2 = 5.550328642e-02f, E3 = 9.618489072e-03f, E4 = 1.339993090e-03f, E5 = 1.534581243e-04f;

    /// <summary>2^x for x ≤ 0, 8 lanes (see above).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp2NonPositive(Vector256<float> x)
    {
        x = Vector256.Max(x, Vector256.Create(-127f));
        var n = Vector256.Round(x);
        var f = x - n;
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(E5), f, Vector256.Create(E4));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(E3));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(E2));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(E1));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256.Create(E0));
        p = Vector256.FusedMultiplyAdd(p, f, Vector256<float>.One);
        return p * ((Vector256.ConvertToInt32(n) + Vector256.Create(127)) << 23).AsSingle();
    }

    /// <summary>2^x for x ≤ 0, 16 lanes: the polynomial of the 8-lane form, 2^n applied by vscalefps.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp2NonPositive(Vector512<float> x)
    {
        x = Vector512.Max(x, Vector512.Create(-127f));
        var n = Vector512.Round(x);
        var f = x - n;
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(E5), f, Vector512.Create(E4));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(E3));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(E2));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(E1));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(E0));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512<float>.One);
        return System.Runtime.Intrinsics.X86.Avx512F.Scale(p, n);
    }
}

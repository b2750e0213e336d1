using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace BlockDance.Kernels.Cpu;

/// <summary>Scalar and vector math shared by the CPU kernels (float32, written to match PyTorch's float32 formulas).</summary>
internal static class CpuMath
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> GeluTanh(Vector256<float> x)
    {
        var inner = Vector256.Create(GeluBeta) * (x + Vector256.Create(GeluKappa) * (x * x * x));
        return x / (Vector256<float>.One + Exp(Vector256.Create(-2f) * inner));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Silu(Vector256<float> x) => x / (Vector256<float>.One + Exp(-x));

    /// <summary>Applies an activation to a span in place, 8 lanes at a time.</summary>
    public static void Activate(Span<float> y, Activation act)
    {
        if (act == Activation.None)
            return;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float r = ref y[0];
            for (; i + 8 <= y.Length; i += 8)
            {
                var v = Vector256.LoadUnsafe(ref r, (nuint)i);
                (act == Activation.GeluTanh ? GeluTanh(v) : Silu(v)).StoreUnsafe(ref r, (nuint)i);
            }
        }
        for (; i < y.Length; i++)
            y[i] = act == Activation.GeluTanh ? GeluTanh(y[i]) : Silu(y[i]);
    }

    /// <summary>
    /// exp(x) for 8 lanes: range reduction x = n·ln2 + r and a degree-6 polynomial; relative error about 2 ulp over the
    /// float range, inputs below −87.3 flush to 0 and above 88.7 saturate to +∞.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        x = Vector256.Min(Vector256.Max(x, Vector256.Create(-87.33654f)), Vector256.Create(88.72283f));
        var n = Vector256.Round(x * Vector256.Create(1.44269504088896341f));
        // Cody–Waite: ln2 split into a high part exact in float and a low correction.
        var r = x - n * Vector256.Create(0.693359375f);
        r -= n * Vector256.Create(-2.12194440e-4f);
        var p = Vector256.Create(1.9875691500e-4f);
        p = p * r + Vector256.Create(1.3981999507e-3f);
        p = p * r + Vector256.Create(8.3334519073e-3f);
        p = p * r + Vector256.Create(4.1665795894e-2f);
        p = p * r + Vector256.Create(1.6666665459e-1f);
        p = p * r + Vector256.Create(5.0000001201e-1f);
        p = p * (r * r) + r + Vector256<float>.One;
        // 2^n through the exponent bits; n is in [-126, 128] after the clamp (128 → ∞ handled by the bit pattern).
        var bits = (Vector256.ConvertToInt32(n) + Vector256.Create(127)) << 23;
        var scale = bits.AsSingle();
        var result = p * scale;
        return Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(-87.3365f)), Vector256<float>.Zero, result);
    }
}

using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace BlockDance.Kernels.Cpu;

/// <summary>
/// Multi-head attention on the CPU without materialising the score matrix: work items are (batch, head, block of
/// <see cref="RowBlock"/> query rows), spread over the cores; each item computes its rows' scores against all keys,
/// the softmax and the weighted sum of values in a scratch tile of RowBlock × T floats. Keys and values are first
/// packed per (batch, head) — keys transposed [Dh, T], values [T, Dh] — so both inner loops stream contiguous memory
/// (in the qkv layout one head's value rows lie 3·D floats apart, a page per row for DiT-XL). Register blocking:
/// 4 query rows × 16 keys for the scores, 4 query rows × 16 (then 8) value columns for the output, with FMA where
/// the CPU has it, and 32 keys / 32 value columns at a time with AVX-512 (the same sums in the same order), 8 query
/// rows at a time (16 accumulators) where T and Dh are multiples of 32.
/// </summary>
internal static unsafe class CpuAttention
{
    public const int RowBlock = 32;

    /// <summary>Floats of packing scratch for a qkv of <paramref name="batch"/> × T × 3D: keys and values, B·T·D each.</summary>
    public static long ScratchFloats(int batch, int tokens, int d) => 2L * batch * tokens * d;

    public struct PackJob : IRangeJob
    {
        public float* Qkv, Kt, Vp;
        public int T, D, Dh, Heads;

        public readonly void Execute(int start, int end)
        {
            for (int bh = start; bh < end; bh++)
            {
                int b = bh / Heads, h = bh % Heads;
                float* k = Qkv + (long)b * T * 3 * D + D + h * Dh;   // key row t at k + t·3D
                float* v = k + D;                                     // value row t at v + t·3D
                float* kt = Kt + (long)bh * Dh * T;                   // [Dh, T]
                float* vp = Vp + (long)bh * T * Dh;                   // [T, Dh]
                for (int t = 0; t < T; t++)
                {
                    float* row = k + (long)t * 3 * D;
                    for (int d = 0; d < Dh; d++)
                        kt[(long)d * T + t] = row[d];
                    new ReadOnlySpan<float>(v + (long)t * 3 * D, Dh).CopyTo(new Span<float>(vp + (long)t * Dh, Dh));
                }
            }
        }
    }

    public struct RowsJob : IRangeJob
    {
        public float* Qkv, Kt, Vp, Y;
        public int T, D, Dh, Heads, RowBlocks;
        public float Scale;

        public readonly void Execute(int start, int end)
        {
            float[] rented = ArrayPool<float>.Shared.Rent(RowBlock * T);
            fixed (float* scores = rented)
            {
                for (int item = start; item < end; item++)
                {
                    int bh = item / RowBlocks, q0 = item % RowBlocks * RowBlock;
                    int rows = Math.Min(RowBlock, T - q0);
                    int b = bh / Heads, h = bh % Heads;
                    float* q = Qkv + ((long)b * T + q0) * 3 * D + h * Dh;   // query row r at q + r·3D
                    float* v = Vp + (long)bh * T * Dh;                       // value row t at v + t·Dh
                    float* kt = Kt + (long)bh * Dh * T;
                    float* y = Y + ((long)b * T + q0) * D + h * Dh;          // output row r at y + r·D
                    Scores(q, 3 * D, kt, T, Dh, rows, Scale, scores);
                    for (int r = 0; r < rows; r++)
                        CpuOps.SoftmaxInPlace(new Span<float>(scores + (long)r * T, T));
                    WeightedValues(scores, T, v, Dh, Dh, rows, y, D);
                }
            }
            ArrayPool<float>.Shared.Return(rented);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Fmadd(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        Fma.IsSupported ? Fma.MultiplyAdd(a, b, c) : a * b + c;

    /// <summary>s[r, t] = scale · Σ_d q[r, d]·kt[d, t] for r &lt; rows, t &lt; T.</summary>
    private static void Scores(float* q, int qStride, float* kt, int T, int dh, int rows, float scale, float* s)
    {
        int r = 0;
        if (Avx512F.IsSupported && T % 32 == 0)
            for (; r + 8 <= rows; r += 8)
                for (int t = 0; t < T; t += 32)
                    Scores8x32(q + (long)r * qStride, qStride, kt + t, T, dh, scale, s + (long)r * T + t);
        for (; r + 4 <= rows; r += 4)
        {
            float* q0 = q + (long)r * qStride, q1 = q0 + qStride, q2 = q1 + qStride, q3 = q2 + qStride;
            int t = 0;
            if (Avx512F.IsSupported)
                for (; t + 32 <= T; t += 32)   // the same sums in the same order, 32 keys at a time
                {
                    Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default;
                    Vector512<float> a20 = default, a21 = default, a30 = default, a31 = default;
                    for (int d = 0; d < dh; d++)
                    {
                        float* k = kt + (long)d * T + t;
                        var k0 = Vector512.Load(k);
                        var k1 = Vector512.Load(k + 16);
                        var b0 = Vector512.Create(q0[d]); a00 = Avx512F.FusedMultiplyAdd(b0, k0, a00); a01 = Avx512F.FusedMultiplyAdd(b0, k1, a01);
                        var b1 = Vector512.Create(q1[d]); a10 = Avx512F.FusedMultiplyAdd(b1, k0, a10); a11 = Avx512F.FusedMultiplyAdd(b1, k1, a11);
                        var b2 = Vector512.Create(q2[d]); a20 = Avx512F.FusedMultiplyAdd(b2, k0, a20); a21 = Avx512F.FusedMultiplyAdd(b2, k1, a21);
                        var b3 = Vector512.Create(q3[d]); a30 = Avx512F.FusedMultiplyAdd(b3, k0, a30); a31 = Avx512F.FusedMultiplyAdd(b3, k1, a31);
                    }
                    var vs = Vector512.Create(scale);
                    float* s0 = s + (long)r * T + t;
                    (a00 * vs).Store(s0); (a01 * vs).Store(s0 + 16);
                    (a10 * vs).Store(s0 + T); (a11 * vs).Store(s0 + T + 16);
                    (a20 * vs).Store(s0 + 2 * T); (a21 * vs).Store(s0 + 2 * T + 16);
                    (a30 * vs).Store(s0 + 3 * T); (a31 * vs).Store(s0 + 3 * T + 16);
                }
            for (; t + 16 <= T; t += 16)
            {
                Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default;
                Vector256<float> a20 = default, a21 = default, a30 = default, a31 = default;
                for (int d = 0; d < dh; d++)
                {
                    float* k = kt + (long)d * T + t;
                    var k0 = Vector256.Load(k);
                    var k1 = Vector256.Load(k + 8);
                    var b0 = Vector256.Create(q0[d]); a00 = Fmadd(b0, k0, a00); a01 = Fmadd(b0, k1, a01);
                    var b1 = Vector256.Create(q1[d]); a10 = Fmadd(b1, k0, a10); a11 = Fmadd(b1, k1, a11);
                    var b2 = Vector256.Create(q2[d]); a20 = Fmadd(b2, k0, a20); a21 = Fmadd(b2, k1, a21);
                    var b3 = Vector256.Create(q3[d]); a30 = Fmadd(b3, k0, a30); a31 = Fmadd(b3, k1, a31);
                }
                var vs = Vector256.Create(scale);
                float* s0 = s + (long)r * T + t;
                (a00 * vs).Store(s0); (a01 * vs).Store(s0 + 8);
                (a10 * vs).Store(s0 + T); (a11 * vs).Store(s0 + T + 8);
                (a20 * vs).Store(s0 + 2 * T); (a21 * vs).Store(s0 + 2 * T + 8);
                (a30 * vs).Store(s0 + 3 * T); (a31 * vs).Store(s0 + 3 * T + 8);
            }
            for (int i = 0; i < 4; i++)
                ScalarScores(q + (long)(r + i) * qStride, kt, T, dh, t, T, scale, s + (long)(r + i) * T);
        }
        for (; r < rows; r++)
            ScalarScores(q + (long)r * qStride, kt, T, dh, 0, T, scale, s + (long)r * T);
    }

    /// <summary>
    /// AVX-512, 8 query rows × 32 keys in 16 accumulators: s[i, j] = scale · Σ_d q[i, d]·kt[d, j] (kt's row stride T),
    /// each sum in d order, as the 4-row loops.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores8x32(float* q, int qStride, float* kt, int T, int dh, float scale, float* s)
    {
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        Vector512<float> a40 = default, a41 = default, a50 = default, a51 = default, a60 = default, a61 = default, a70 = default, a71 = default;
        float* q0 = q, q1 = q0 + qStride, q2 = q1 + qStride, q3 = q2 + qStride, q4 = q3 + qStride, q5 = q4 + qStride, q6 = q5 + qStride, q7 = q6 + qStride;
        for (int d = 0; d < dh; d++, kt += T)
        {
            var k0 = Vector512.Load(kt);
            var k1 = Vector512.Load(kt + 16);
            var b = Vector512.Create(q0[d]); a00 = Avx512F.FusedMultiplyAdd(b, k0, a00); a01 = Avx512F.FusedMultiplyAdd(b, k1, a01);
            b = Vector512.Create(q1[d]); a10 = Avx512F.FusedMultiplyAdd(b, k0, a10); a11 = Avx512F.FusedMultiplyAdd(b, k1, a11);
            b = Vector512.Create(q2[d]); a20 = Avx512F.FusedMultiplyAdd(b, k0, a20); a21 = Avx512F.FusedMultiplyAdd(b, k1, a21);
            b = Vector512.Create(q3[d]); a30 = Avx512F.FusedMultiplyAdd(b, k0, a30); a31 = Avx512F.FusedMultiplyAdd(b, k1, a31);
            b = Vector512.Create(q4[d]); a40 = Avx512F.FusedMultiplyAdd(b, k0, a40); a41 = Avx512F.FusedMultiplyAdd(b, k1, a41);
            b = Vector512.Create(q5[d]); a50 = Avx512F.FusedMultiplyAdd(b, k0, a50); a51 = Avx512F.FusedMultiplyAdd(b, k1, a51);
            b = Vector512.Create(q6[d]); a60 = Avx512F.FusedMultiplyAdd(b, k0, a60); a61 = Avx512F.FusedMultiplyAdd(b, k1, a61);
            b = Vector512.Create(q7[d]); a70 = Avx512F.FusedMultiplyAdd(b, k0, a70); a71 = Avx512F.FusedMultiplyAdd(b, k1, a71);
        }
        var vs = Vector512.Create(scale);
        (a00 * vs).Store(s); (a01 * vs).Store(s + 16); s += T;
        (a10 * vs).Store(s); (a11 * vs).Store(s + 16); s += T;
        (a20 * vs).Store(s); (a21 * vs).Store(s + 16); s += T;
        (a30 * vs).Store(s); (a31 * vs).Store(s + 16); s += T;
        (a40 * vs).Store(s); (a41 * vs).Store(s + 16); s += T;
        (a50 * vs).Store(s); (a51 * vs).Store(s + 16); s += T;
        (a60 * vs).Store(s); (a61 * vs).Store(s + 16); s += T;
        (a70 * vs).Store(s); (a71 * vs).Store(s + 16);
    }

    /// <summary>
    /// AVX-512, 8 rows × 32 value columns in 16 accumulators: y[i, j] = Σ_t p[i, t]·v[t, j] (p's row stride T, v's
    /// vStride, y's yStride), each sum in t order, as the 4-row loops.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Values8x32(float* p, int T, float* v, int vStride, float* y, int yStride)
    {
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        Vector512<float> a40 = default, a41 = default, a50 = default, a51 = default, a60 = default, a61 = default, a70 = default, a71 = default;
        float* p0 = p, p1 = p0 + T, p2 = p1 + T, p3 = p2 + T, p4 = p3 + T, p5 = p4 + T, p6 = p5 + T, p7 = p6 + T;
        for (int t = 0; t < T; t++, v += vStride)
        {
            var v0 = Vector512.Load(v);
            var v1 = Vector512.Load(v + 16);
            var b = Vector512.Create(p0[t]); a00 = Avx512F.FusedMultiplyAdd(b, v0, a00); a01 = Avx512F.FusedMultiplyAdd(b, v1, a01);
            b = Vector512.Create(p1[t]); a10 = Avx512F.FusedMultiplyAdd(b, v0, a10); a11 = Avx512F.FusedMultiplyAdd(b, v1, a11);
            b = Vector512.Create(p2[t]); a20 = Avx512F.FusedMultiplyAdd(b, v0, a20); a21 = Avx512F.FusedMultiplyAdd(b, v1, a21);
            b = Vector512.Create(p3[t]); a30 = Avx512F.FusedMultiplyAdd(b, v0, a30); a31 = Avx512F.FusedMultiplyAdd(b, v1, a31);
            b = Vector512.Create(p4[t]); a40 = Avx512F.FusedMultiplyAdd(b, v0, a40); a41 = Avx512F.FusedMultiplyAdd(b, v1, a41);
            b = Vector512.Create(p5[t]); a50 = Avx512F.FusedMultiplyAdd(b, v0, a50); a51 = Avx512F.FusedMultiplyAdd(b, v1, a51);
            b = Vector512.Create(p6[t]); a60 = Avx512F.FusedMultiplyAdd(b, v0, a60); a61 = Avx512F.FusedMultiplyAdd(b, v1, a61);
            b = Vector512.Create(p7[t]); a70 = Avx512F.FusedMultiplyAdd(b, v0, a70); a71 = Avx512F.FusedMultiplyAdd(b, v1, a71);
        }
        a00.Store(y); a01.Store(y + 16); y += yStride;
        a10.Store(y); a11.Store(y + 16); y += yStride;
        a20.Store(y); a21.Store(y + 16); y += yStride;
        a30.Store(y); a31.Store(y + 16); y += yStride;
        a40.Store(y); a41.Store(y + 16); y += yStride;
        a50.Store(y); a51.Store(y + 16); y += yStride;
        a60.Store(y); a61.Store(y + 16); y += yStride;
        a70.Store(y); a71.Store(y + 16);
    }

    private static void ScalarScores(float* q, float* kt, int T, int dh, int from, int to, float scale, float* s)
    {
        for (int t = from; t < to; t++)
        {
            float acc = 0;
            for (int d = 0; d < dh; d++)
                acc += q[d] * kt[(long)d * T + t];
            s[t] = acc * scale;
        }
    }

    /// <summary>y[r, d] = Σ_t p[r, t]·v[t, d] for r &lt; rows, d &lt; Dh.</summary>
    private static void WeightedValues(float* p, int T, float* v, int vStride, int dh, int rows, float* y, int yStride)
    {
        int r = 0;
        if (Avx512F.IsSupported && dh % 32 == 0)
            for (; r + 8 <= rows; r += 8)
                for (int d = 0; d < dh; d += 32)
                    Values8x32(p + (long)r * T, T, v + d, vStride, y + (long)r * yStride + d, yStride);
        for (; r + 4 <= rows; r += 4)
        {
            float* p0 = p + (long)r * T, p1 = p0 + T, p2 = p1 + T, p3 = p2 + T;
            int d = 0;
            if (Avx512F.IsSupported)
                for (; d + 32 <= dh; d += 32)   // the same sums in the same order, 32 columns at a time
                {
                    Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default;
                    Vector512<float> a20 = default, a21 = default, a30 = default, a31 = default;
                    for (int t = 0; t < T; t++)
                    {
                        float* vr = v + (long)t * vStride + d;
                        var v0 = Vector512.Load(vr);
                        var v1 = Vector512.Load(vr + 16);
                        var b0 = Vector512.Create(p0[t]); a00 = Avx512F.FusedMultiplyAdd(b0, v0, a00); a01 = Avx512F.FusedMultiplyAdd(b0, v1, a01);
                        var b1 = Vector512.Create(p1[t]); a10 = Avx512F.FusedMultiplyAdd(b1, v0, a10); a11 = Avx512F.FusedMultiplyAdd(b1, v1, a11);
                        var b2 = Vector512.Create(p2[t]); a20 = Avx512F.FusedMultiplyAdd(b2, v0, a20); a21 = Avx512F.FusedMultiplyAdd(b2, v1, a21);
                        var b3 = Vector512.Create(p3[t]); a30 = Avx512F.FusedMultiplyAdd(b3, v0, a30); a31 = Avx512F.FusedMultiplyAdd(b3, v1, a31);
                    }
                    float* y0 = y + (long)r * yStride + d;
                    a00.Store(y0); a01.Store(y0 + 16);
                    a10.Store(y0 + yStride); a11.Store(y0 + yStride + 16);
                    a20.Store(y0 + 2 * yStride); a21.Store(y0 + 2 * yStride + 16);
                    a30.Store(y0 + 3 * yStride); a31.Store(y0 + 3 * yStride + 16);
                }
            for (; d + 16 <= dh; d += 16)
            {
                Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default;
                Vector256<float> a20 = default, a21 = default, a30 = default, a31 = default;
                for (int t = 0; t < T; t++)
                {
                    float* vr = v + (long)t * vStride + d;
                    var v0 = Vector256.Load(vr);
                    var v1 = Vector256.Load(vr + 8);
                    var b0 = Vector256.Create(p0[t]); a00 = Fmadd(b0, v0, a00); a01 = Fmadd(b0, v1, a01);
                    var b1 = Vector256.Create(p1[t]); a10 = Fmadd(b1, v0, a10); a11 = Fmadd(b1, v1, a11);
                    var b2 = Vector256.Create(p2[t]); a20 = Fmadd(b2, v0, a20); a21 = Fmadd(b2, v1, a21);
                    var b3 = Vector256.Create(p3[t]); a30 = Fmadd(b3, v0, a30); a31 = Fmadd(b3, v1, a31);
                }
                float* y0 = y + (long)r * yStride + d;
                a00.Store(y0); a01.Store(y0 + 8);
                a10.Store(y0 + yStride); a11.Store(y0 + yStride + 8);
                a20.Store(y0 + 2 * yStride); a21.Store(y0 + 2 * yStride + 8);
                a30.Store(y0 + 3 * yStride); a31.Store(y0 + 3 * yStride + 8);
            }
            for (; d + 8 <= dh; d += 8)   // e.g. the last 8 of DiT-XL's 72
            {
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (int t = 0; t < T; t++)
                {
                    var v0 = Vector256.Load(v + (long)t * vStride + d);
                    a0 = Fmadd(Vector256.Create(p0[t]), v0, a0);
                    a1 = Fmadd(Vector256.Create(p1[t]), v0, a1);
                    a2 = Fmadd(Vector256.Create(p2[t]), v0, a2);
                    a3 = Fmadd(Vector256.Create(p3[t]), v0, a3);
                }
                float* y0 = y + (long)r * yStride + d;
                a0.Store(y0); a1.Store(y0 + yStride); a2.Store(y0 + 2 * yStride); a3.Store(y0 + 3 * yStride);
            }
            for (int i = 0; i < 4; i++)
                ScalarValues(p + (long)(r + i) * T, T, v, vStride, d, dh, y + (long)(r + i) * yStride);
        }
        for (; r < rows; r++)
            ScalarValues(p + (long)r * T, T, v, vStride, 0, dh, y + (long)r * yStride);
    }

    private static void ScalarValues(float* p, int T, float* v, int vStride, int from, int to, float* y)
    {
        for (int d = from; d < to; d++)
        {
            float acc = 0;
            for (int t = 0; t < T; t++)
                acc += p[t] * v[(long)t * vStride + d];
            y[d] = acc;
        }
    }
}

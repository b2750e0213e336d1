using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace BlockDance.Kernels.Cpu;

/// <summary>
/// Multi-head attention on the CPU without materialising the score matrix: work items are (batch, head, block of
/// <see cref="RowBlock"/> query rows), spread over the cores; each item computes its rows' scores against all keys,
/// the softmax and the weighted sum of values in a scratch tile of RowBlock × T floats. The softmax works in base 2
/// (the scores are scaled by log2 e, so exp is <see cref="CpuMath.Exp2NonPositive(Vector512{float})"/>) and leaves
/// the division by each row's sum to the output row. Keys and values are first
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
                int t0 = 0, d0 = 0;
                if (Avx.IsSupported)   // 8 × 8 blocks of the keys transposed in registers, the rest one by one
                {
                    for (; t0 + 8 <= T; t0 += 8)
                        for (d0 = 0; d0 + 8 <= Dh; d0 += 8)
                            CpuGemm.Transpose8x8(k + (long)t0 * 3 * D + d0, 3 * D, kt + (long)d0 * T + t0, T);
                    d0 = Dh - Dh % 8;
                }
                for (int t = 0; t < T; t++)
                {
                    float* row = k + (long)t * 3 * D;
                    for (int d = t < t0 ? d0 : 0; d < Dh; d++)
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
            float* inverseSums = stackalloc float[RowBlock];
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
                        inverseSums[r] = 1f / Exp2Shifted(scores + (long)r * T, T);
                    WeightedValues(scores, T, v, Dh, Dh, rows, inverseSums, y, D);
                }
            }
            ArrayPool<float>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// The numerator of a numerically stable softmax of scores in base 2 (scaled by log2(e)):
    /// <c>row[i] = 2^(row[i] − max(row))</c> in place; returns the sum, the denominator (the weighted sum of the values
    /// is divided by it, not each probability).
    /// </summary>
    private static float Exp2Shifted(float* row, int n)
    {
        float max = RowMax(row, n), sum = 0;
        int i = 0;
        if (Avx512F.IsSupported)
        {
            var vm = Vector512.Create(max);
            var vsum = Vector512<float>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                var e = CpuMath.Exp2NonPositive(Vector512.Load(row + i) - vm);
                e.Store(row + i);
                vsum += e;
            }
            sum = Vector512.Sum(vsum);
        }
        else if (Avx.IsSupported)
        {
            var vm = Vector256.Create(max);
            var vsum = Vector256<float>.Zero;
            for (; i + 8 <= n; i += 8)
            {
                var e = CpuMath.Exp2NonPositive(Vector256.Load(row + i) - vm);
                e.Store(row + i);
                vsum += e;
            }
            sum = Vector256.Sum(vsum);
        }
        for (; i < n; i++)
        {
            row[i] = float.Exp2(row[i] - max);
            sum += row[i];
        }
        return sum;
    }

    /// <summary>
    /// The largest of <c>row[0..n)</c>, with vmaxps itself: Vector512.Max and Vector256.Max add two fix-ups per call for
    /// IEEE's rules on −0 and NaN, a chain of three dependent instructions per step. (A NaN may be skipped here; it
    /// still reaches the sum of the exponentials, and so the output.)
    /// </summary>
    private static float RowMax(float* row, int n)
    {
        int i = 0;
        var max8 = Vector256.Create(float.NegativeInfinity);
        if (Avx512F.IsSupported && n >= 32)
        {
            Vector512<float> a = Vector512.Load(row), b = Vector512.Load(row + 16);   // two independent chains
            for (i = 32; i + 32 <= n; i += 32)
            {
                a = Avx512F.Max(a, Vector512.Load(row + i));
                b = Avx512F.Max(b, Vector512.Load(row + i + 16));
            }
            a = Avx512F.Max(a, b);
            max8 = Avx.Max(a.GetLower(), a.GetUpper());
        }
        if (Avx.IsSupported)
            for (; i + 8 <= n; i += 8)
                max8 = Avx.Max(max8, Vector256.Load(row + i));
        var max4 = Sse.Max(max8.GetLower(), max8.GetUpper());
        float max = MathF.Max(MathF.Max(max4[0], max4[1]), MathF.Max(max4[2], max4[3]));
        for (; i < n; i++)
            max = MathF.Max(max, row[i]);
        return max;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Fmadd(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        Fma.IsSupported ? Fma.MultiplyAdd(a, b, c) : a * b + c;

    /// <summary>s[r, t] = scale · Σ_d q[r, d]·kt[d, t] for r &lt; rows, t &lt; T.</summary>
    private static void Scores(float* q, int qStride, float* kt, int T, int dh, int rows, float scale, float* s)
    {
        int r = 0;
        if (Avx512F.IsSupported && T % 32 == 0)
        {
            int full = rows - rows % 8;   // each 32-key slab of kt (Dh × 32) stays in L1 while every 8-row group uses it
            for (int t = 0; t < T; t += 32)
                for (r = 0; r < full; r += 8)
                    Rows8x32(q + (long)r * qStride, qStride, kt + t, T, dh, &scale, 0, s + (long)r * T + t, T);
            r = full;
        }
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
    /// AVX-512, 8 rows × 32 columns in 16 accumulators: c[i, j] = scale · Σ_k a[i, k]·b[k, j] for k &lt; n, each sum in
    /// k order, as the 4-row loops. Scores: a = queries, b = keys transposed (k = d); weighted values: a = the
    /// probabilities, b = values (k = t), scale 1 (exact).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows8x32(float* a, int lda, float* b, int ldb, int n, float* scale, int scaleStride, float* c, int ldc)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
        float* a0 = a, a1 = a0 + lda, a2 = a1 + lda, a3 = a2 + lda, a4 = a3 + lda, a5 = a4 + lda, a6 = a5 + lda, a7 = a6 + lda;
        for (int k = 0; k < n; k++, b += ldb)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var x = Vector512.Create(a0[k]); c00 = Avx512F.FusedMultiplyAdd(x, b0, c00); c01 = Avx512F.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(a1[k]); c10 = Avx512F.FusedMultiplyAdd(x, b0, c10); c11 = Avx512F.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(a2[k]); c20 = Avx512F.FusedMultiplyAdd(x, b0, c20); c21 = Avx512F.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(a3[k]); c30 = Avx512F.FusedMultiplyAdd(x, b0, c30); c31 = Avx512F.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(a4[k]); c40 = Avx512F.FusedMultiplyAdd(x, b0, c40); c41 = Avx512F.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(a5[k]); c50 = Avx512F.FusedMultiplyAdd(x, b0, c50); c51 = Avx512F.FusedMultiplyAdd(x, b1, c51);
            x = Vector512.Create(a6[k]); c60 = Avx512F.FusedMultiplyAdd(x, b0, c60); c61 = Avx512F.FusedMultiplyAdd(x, b1, c61);
            x = Vector512.Create(a7[k]); c70 = Avx512F.FusedMultiplyAdd(x, b0, c70); c71 = Avx512F.FusedMultiplyAdd(x, b1, c71);
        }
        var vs = Vector512.Create(scale[0]);
        (c00 * vs).Store(c); (c01 * vs).Store(c + 16); c += ldc; vs = Vector512.Create(scale[scaleStride]);
        (c10 * vs).Store(c); (c11 * vs).Store(c + 16); c += ldc; vs = Vector512.Create(scale[2 * scaleStride]);
        (c20 * vs).Store(c); (c21 * vs).Store(c + 16); c += ldc; vs = Vector512.Create(scale[3 * scaleStride]);
        (c30 * vs).Store(c); (c31 * vs).Store(c + 16); c += ldc; vs = Vector512.Create(scale[4 * scaleStride]);
        (c40 * vs).Store(c); (c41 * vs).Store(c + 16); c += ldc; vs = Vector512.Create(scale[5 * scaleStride]);
        (c50 * vs).Store(c); (c51 * vs).Store(c + 16); c += ldc; vs = Vector512.Create(scale[6 * scaleStride]);
        (c60 * vs).Store(c); (c61 * vs).Store(c + 16); c += ldc; vs = Vector512.Create(scale[7 * scaleStride]);
        (c70 * vs).Store(c); (c71 * vs).Store(c + 16);
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

    /// <summary>y[r, d] = rowScale[r] · Σ_t p[r, t]·v[t, d] for r &lt; rows, d &lt; Dh.</summary>
    private static void WeightedValues(float* p, int T, float* v, int vStride, int dh, int rows, float* rowScale, float* y, int yStride)
    {
        // With AVX-512, the columns in whole slabs of 32 for every group of 8 rows (each slab of the values stays in
        // cache while the groups use it); the rest, DiT-XL/2's last 8 of 72 columns and the last rows, 4 rows at a time.
        int slabs = Avx512F.IsSupported ? dh - dh % 32 : 0, full = slabs > 0 ? rows - rows % 8 : 0;
        for (int d = 0; d < slabs; d += 32)
            for (int r = 0; r < full; r += 8)
                Rows8x32(p + (long)r * T, T, v + d, vStride, T, rowScale + r, 1, y + (long)r * yStride + d, yStride);
        if (slabs < dh)
            ValuesByFour(p, T, v, vStride, dh, 0, full, slabs, rowScale, y, yStride);
        ValuesByFour(p, T, v, vStride, dh, full, rows, 0, rowScale, y, yStride);
    }

    /// <summary><see cref="WeightedValues"/> for rows [r0, r1) and columns [d0, dh): 4 rows at a time, then one.</summary>
    private static void ValuesByFour(float* p, int T, float* v, int vStride, int dh, int r0, int r1, int d0, float* rowScale, float* y, int yStride)
    {
        int r = r0;
        for (; r + 4 <= r1; r += 4)
        {
            float* p0 = p + (long)r * T, p1 = p0 + T, p2 = p1 + T, p3 = p2 + T;
            int d = d0;
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
                    var s0 = Vector512.Create(rowScale[r]); var s1 = Vector512.Create(rowScale[r + 1]);
                    var s2 = Vector512.Create(rowScale[r + 2]); var s3 = Vector512.Create(rowScale[r + 3]);
                    (a00 * s0).Store(y0); (a01 * s0).Store(y0 + 16);
                    (a10 * s1).Store(y0 + yStride); (a11 * s1).Store(y0 + yStride + 16);
                    (a20 * s2).Store(y0 + 2 * yStride); (a21 * s2).Store(y0 + 2 * yStride + 16);
                    (a30 * s3).Store(y0 + 3 * yStride); (a31 * s3).Store(y0 + 3 * yStride + 16);
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
                var s0 = Vector256.Create(rowScale[r]); var s1 = Vector256.Create(rowScale[r + 1]);
                var s2 = Vector256.Create(rowScale[r + 2]); var s3 = Vector256.Create(rowScale[r + 3]);
                (a00 * s0).Store(y0); (a01 * s0).Store(y0 + 8);
                (a10 * s1).Store(y0 + yStride); (a11 * s1).Store(y0 + yStride + 8);
                (a20 * s2).Store(y0 + 2 * yStride); (a21 * s2).Store(y0 + 2 * yStride + 8);
                (a30 * s3).Store(y0 + 3 * yStride); (a31 * s3).Store(y0 + 3 * yStride + 8);
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
                (a0 * Vector256.Create(rowScale[r])).Store(y0); (a1 * Vector256.Create(rowScale[r + 1])).Store(y0 + yStride);
                (a2 * Vector256.Create(rowScale[r + 2])).Store(y0 + 2 * yStride); (a3 * Vector256.Create(rowScale[r + 3])).Store(y0 + 3 * yStride);
            }
            for (int i = 0; i < 4; i++)
                ScalarValues(p + (long)(r + i) * T, T, v, vStride, d, dh, rowScale[r + i], y + (long)(r + i) * yStride);
        }
        for (; r < r1; r++)
            ScalarValues(p + (long)r * T, T, v, vStride, d0, dh, rowScale[r], y + (long)r * yStride);
    }

    private static void ScalarValues(float* p, int T, float* v, int vStride, int from, int to, float scale, float* y)
    {
        for (int d = from; d < to; d++)
        {
            float acc = 0;
            for (int t = 0; t < T; t++)
                acc += p[t] * v[(long)t * vStride + d];
            y[d] = acc * scale;
        }
    }
}

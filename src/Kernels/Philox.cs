using System.Runtime.CompilerServices;

namespace BlockDance.Kernels;

/// <summary>
/// Counter-based random numbers (Philox4x32-10, Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011)
/// turned into standard normals by Box–Muller. A sample is a pure function of (seed, index), so the CPU device, the
/// CUDA kernels (<c>random.cu</c> computes the same function) and any thread count draw identical streams.
/// Element g uses the counter (g / 2, 0, 0) and key (seed low, seed high); the first two output words give u₁, u₂,
/// and even g takes the cosine branch, odd g the sine branch.
/// </summary>
internal static class Philox
{
    private const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85;

    /// <summary>The four output words of Philox4x32-10 for a counter and a key.</summary>
    public static (uint, uint, uint, uint) Block(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1)
    {
        for (int round = 0; round < 10; round++)
        {
            ulong p0 = (ulong)M0 * c0, p1 = (ulong)M1 * c2;
            uint hi0 = (uint)(p0 >> 32), lo0 = (uint)p0, hi1 = (uint)(p1 >> 32), lo1 = (uint)p1;
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
            k0 += W0;
            k1 += W1;
        }
        return (c0, c1, c2, c3);
    }

    /// <summary>A uniform float in (0, 1) from the top 23 bits of a word; exact in float32, never 0 or 1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Uniform(uint word) => ((word >> 9) + 0.5f) * (1f / 8388608f);

    /// <summary>The standard normal sample number <paramref name="index"/> of the stream <paramref name="seed"/>.</summary>
    public static float Normal(ulong seed, ulong index)
    {
        ulong pair = index >> 1;
        var (r0, r1, _, _) = Block((uint)pair, (uint)(pair >> 32), 0, 0, (uint)seed, (uint)(seed >> 32));
        float radius = MathF.Sqrt(-2f * MathF.Log(Uniform(r0)));
        float angle = 6.2831855f * Uniform(r1);
        return (index & 1) == 0 ? radius * MathF.Cos(angle) : radius * MathF.Sin(angle);
    }
}

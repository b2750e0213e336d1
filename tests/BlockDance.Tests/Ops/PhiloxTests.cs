using BlockDance.Kernels;
using Xunit;

namespace BlockDance.Tests.Ops;

/// <summary>Philox4x32-10 against the known-answer vectors of the Random123 distribution (kat_vectors, philox4x32_10).</summary>
public sealed class PhiloxTests
{
    [Theory]
    [InlineData(0u, 0u, 0u, 0u, 0u, 0u, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u)]
    [InlineData(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu)]
    [InlineData(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u, 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u)]
    public void Block_matches_the_published_known_answers(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1, uint r0, uint r1, uint r2, uint r3) =>
        Assert.Equal((r0, r1, r2, r3), Philox.Block(c0, c1, c2, c3, k0, k1));

    [Fact]
    public void Uniforms_lie_strictly_inside_the_unit_interval()
    {
        Assert.Equal(0.5f / 8388608f, Philox.Uniform(0));
        Assert.Equal((8388607 + 0.5f) / 8388608f, Philox.Uniform(uint.MaxValue));
        Assert.True(Philox.Uniform(uint.MaxValue) < 1f);
    }

    [Fact]
    public void Normal_pairs_share_a_counter_and_use_cosine_then_sine()
    {
        // Independent Box–Muller on the first two output words of counter (index / 2).
        for (ulong i = 0; i < 6; i++)
        {
            ulong pair = i / 2;
            var (w0, w1, _, _) = Philox.Block((uint)pair, (uint)(pair >> 32), 0, 0, 7, 0);
            double u1 = ((w0 >> 9) + 0.5) / 8388608.0, u2 = ((w1 >> 9) + 0.5) / 8388608.0;
            double r = Math.Sqrt(-2 * Math.Log(u1)), a = 2 * Math.PI * u2;
            double expected = i % 2 == 0 ? r * Math.Cos(a) : r * Math.Sin(a);
            Assert.Equal(expected, Philox.Normal(7, i), 1e-5);
        }
    }
}

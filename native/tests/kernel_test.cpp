// Correct kernels give exact results under every schedule and OS-thread count.
// Kernels: native/tests/kernels/{reduce,warp,convert,atomic,misc}_kernels.cu.
#include <gmock/gmock.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "test_util.h"

using namespace emu_test;

namespace {

class KernelTest : public EmuTest {};

// Small integers as floats: every partial sum is exact, so any summation order gives the same bits.
std::vector<float> integer_floats(size_t n, unsigned seed, int lo = -50, int hi = 50) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(d(rng));
    return v;
}

std::vector<float> block_sums(const std::vector<float>& in, size_t block, size_t blocks) {
    std::vector<float> out(blocks, 0.0f);
    for (size_t i = 0; i < in.size(); ++i) out[i / block] += in[i];
    return out;
}

TEST_F(KernelTest, ReduceStaticSharedMemory) {
    CUfunction f = fn("reduce_static_smem");
    for (unsigned block : {256u, 1024u, 32u}) {
        const int n = static_cast<int>(block * 3 + block / 3); // partial last block
        const unsigned blocks = (n + block - 1) / block;
        const auto in = integer_floats(n, 11 + block);
        const auto expected = block_sums(in, block, blocks);
        DeviceBuffer<float> din(in), dout(blocks);
        for_each_config([&](const Config&) {
            dout.fill_bytes(0);
            CU_ASSERT(launch(f, {blocks}, {block}, 0, din.ptr(), dout.ptr(), n));
            EXPECT_EQ(dout.download(), expected) << "block " << block;
        });
    }
}

TEST_F(KernelTest, ReduceDynamicSharedMemory) {
    CUfunction f = fn("reduce_dynamic_smem");
    const unsigned block = 128;
    const int n = 777;
    const unsigned blocks = (n + block - 1) / block;
    const auto in = integer_floats(n, 5);
    const auto expected = block_sums(in, block, blocks);
    DeviceBuffer<float> din(in), dout(blocks);
    for_each_config([&](const Config&) {
        dout.fill_bytes(0);
        CU_ASSERT(launch(f, {blocks}, {block}, block * sizeof(float), din.ptr(), dout.ptr(), n));
        EXPECT_EQ(dout.download(), expected);
    });
}

TEST_F(KernelTest, PreludeBlockReductions) {
    CUfunction f = fn("reduce_prelude");
    const unsigned block = 96; // three warps
    const int n = 500;
    const unsigned blocks = (n + block - 1) / block;
    const auto in = integer_floats(n, 9);
    const auto sums = block_sums(in, block, blocks);
    std::vector<float> maxes(blocks, -1e30f);
    for (int i = 0; i < n; ++i) maxes[i / block] = std::max(maxes[i / block], in[i]);
    DeviceBuffer<float> din(in), dsum(blocks), dmax(blocks);
    for_each_config([&](const Config&) {
        CU_ASSERT(launch(f, {blocks}, {block}, 0, din.ptr(), dsum.ptr(), dmax.ptr(), n));
        EXPECT_EQ(dsum.download(), sums);
        EXPECT_EQ(dmax.download(), maxes);
    });
}

TEST_F(KernelTest, BarrierCountAndVotes) {
    CUfunction f = fn("barrier_votes");
    const unsigned block = 64, blocks = 3;
    std::vector<int> pred(block * blocks);
    for (unsigned i = 0; i < block; ++i) {
        pred[i] = 1;                // block 0: all
        pred[block + i] = 0;        // block 1: none
        pred[2 * block + i] = i % 3 == 0; // block 2: some
    }
    const std::vector<int> expected = {64, 1, 1, 0, 0, 0, 22, 0, 1};
    DeviceBuffer<int> dpred(pred), dout(3 * blocks);
    for_each_config([&](const Config&) {
        CU_ASSERT(launch(f, {blocks}, {block}, 0, dpred.ptr(), dout.ptr()));
        EXPECT_EQ(dout.download(), expected);
    });
}

TEST_F(KernelTest, EarlyExitedThreadsLeaveTheBarrier) {
    CUfunction f = fn("reduce_early_exit");
    const unsigned block = 256, blocks = 4;
    const int active = 100;
    const auto in = integer_floats(active * blocks, 3);
    const auto expected = block_sums(in, active, blocks);
    DeviceBuffer<float> din(in), dout(blocks);
    for_each_config([&](const Config&) {
        CU_ASSERT(launch(f, {blocks}, {block}, 0, din.ptr(), dout.ptr(), active));
        EXPECT_EQ(dout.download(), expected);
    });
}

TEST_F(KernelTest, DynamicSharedMemoryIsPoisonedAtEveryBlockStart) {
    CUfunction f = fn("read_uninitialised_smem");
    const unsigned block = 64, blocks = 6;
    DeviceBuffer<unsigned> dout(block * blocks);
    for_each_config([&](const Config&) {
        dout.fill_bytes(0);
        CU_ASSERT(launch(f, {blocks}, {block}, block * sizeof(unsigned), dout.ptr()));
        EXPECT_THAT(dout.download(), ::testing::Each(0xffffffffu));
    });
}

TEST_F(KernelTest, WarpReductions) {
    const unsigned block = 128, blocks = 4, n = block * blocks;
    const auto in = integer_floats(n, 21);
    const auto expected = block_sums(in, 32, n / 32);
    DeviceBuffer<float> din(in), dout(n / 32);
    for (const char* name : {"warp_sum_xor", "warp_sum_down"}) {
        SCOPED_TRACE(name);
        CUfunction f = fn(name);
        for_each_config([&](const Config&) {
            dout.fill_bytes(0);
            CU_ASSERT(launch(f, {blocks}, {block}, 0, din.ptr(), dout.ptr()));
            EXPECT_EQ(dout.download(), expected);
        });
    }
}

// Expected shuffle results, written from the CUDA programming guide's definitions: a width-w
// segment [base, base + w); __shfl_sync reads lane base + srcLane % w; __shfl_up_sync returns the
// caller's own value when lane - delta leaves the segment at the bottom, __shfl_down_sync when
// lane + delta leaves it at the top; __shfl_xor_sync may read earlier segments but returns its own
// value for lanes beyond its segment.
int expected_shuffle(int kind, const std::vector<int>& v, int i, int width, int arg) {
    const int lane = i % 32, warp_base = i - lane, base = lane / width * width;
    int src = lane;
    if (kind == 0) src = base + ((arg % width) + width) % width;
    if (kind == 1) src = lane - arg >= base ? lane - arg : lane;
    if (kind == 2) src = lane + arg < base + width ? lane + arg : lane;
    if (kind == 3) src = (lane ^ arg) < base + width ? (lane ^ arg) : lane;
    return v[warp_base + src];
}

TEST_F(KernelTest, ShufflesHonourWidthAndSegments) {
    CUfunction f = fn("shuffle_all");
    const unsigned block = 64, blocks = 2, n = block * blocks;
    std::vector<int> in(n);
    for (unsigned i = 0; i < n; ++i) in[i] = static_cast<int>(1000 + i * 7);
    DeviceBuffer<int> din(in), dout(4 * n);
    for (int width : {32, 16, 8, 4, 2, 1}) {
        for (int arg : {0, 1, 3, 5, 16, 17, 31}) {
            SCOPED_TRACE("width " + std::to_string(width) + " arg " + std::to_string(arg));
            std::vector<int> expected(4 * n);
            for (int kind = 0; kind < 4; ++kind)
                for (unsigned i = 0; i < n; ++i) expected[kind * n + i] = expected_shuffle(kind, in, i, width, arg);
            for (const Config& c : {Config{1, "forward"}, Config{2, "random:3"}}) {
                SCOPED_TRACE(describe(c));
                emu_set_threads(c.threads);
                emu_set_schedule(c.schedule);
                CU_ASSERT(launch(f, {blocks}, {block}, 0, din.ptr(), dout.ptr(), width, arg));
                ASSERT_EQ(dout.download(), expected);
            }
        }
    }
}

TEST_F(KernelTest, WideShufflesMoveAllEightBytes) {
    CUfunction f = fn("shuffle_wide");
    const unsigned n = 64;
    std::vector<long long> in(n);
    for (unsigned i = 0; i < n; ++i) in[i] = (static_cast<long long>(i) << 40) | (0x123456789LL + i);
    std::vector<long long> expected(n);
    std::vector<double> dexpected(n);
    for (unsigned i = 0; i < n; ++i) {
        expected[i] = in[i ^ 1u];
        dexpected[i] = static_cast<double>(in[i / 32 * 32]) * 0.5;
    }
    DeviceBuffer<long long> din(in), dout(n);
    DeviceBuffer<double> ddout(n);
    for_each_config([&](const Config&) {
        CU_ASSERT(launch(f, {1}, {n}, 0, din.ptr(), dout.ptr(), ddout.ptr()));
        EXPECT_EQ(dout.download(), expected);
        EXPECT_EQ(ddout.download(), dexpected);
    });
}

TEST_F(KernelTest, WarpVotesIncludingAPartialWarp) {
    CUfunction f = fn("warp_votes");
    const unsigned block = 48, blocks = 2; // warp 1 of each block has 16 lanes
    std::vector<int> in(block * blocks);
    for (unsigned i = 0; i < in.size(); ++i) in[i] = (i % 5 == 0) ? 1 : 0;
    for (unsigned i = 32; i < 48; ++i) in[i] = 1; // block 0, warp 1: all of its 16 lanes vote yes
    std::vector<unsigned> expected(3 * 2 * blocks, 0);
    DeviceBuffer<int> din(in);
    DeviceBuffer<unsigned> dout(expected.size());
    for (unsigned b = 0; b < blocks; ++b) {
        for (unsigned w = 0; w < 2; ++w) {
            unsigned ballot = 0, lanes = 0;
            for (unsigned l = 0; l < 32 && w * 32 + l < block; ++l) {
                lanes |= 1u << l;
                if (in[b * block + w * 32 + l]) ballot |= 1u << l;
            }
            const unsigned slot = b * 2 + w;
            expected[3 * slot] = ballot;
            expected[3 * slot + 1] = ballot != 0;
            expected[3 * slot + 2] = ballot == lanes;
        }
    }
    for_each_config([&](const Config&) {
        dout.fill_bytes(0);
        CU_ASSERT(launch(f, {blocks}, {block}, 0, din.ptr(), dout.ptr()));
        EXPECT_EQ(dout.download(), expected);
    });
}

TEST_F(KernelTest, DisjointHalfWarpShuffles) {
    CUfunction f = fn("split_warp_shuffle");
    const unsigned n = 64;
    std::vector<int> in(n), expected(n);
    for (unsigned i = 0; i < n; ++i) in[i] = static_cast<int>(i * 3 + 1);
    for (unsigned i = 0; i < n; ++i) {
        const unsigned lane = i % 32, half = lane / 16 * 16;
        expected[i] = in[i - lane + half + ((lane + 1) & 15u)];
    }
    DeviceBuffer<int> din(in), dout(n);
    for_each_config([&](const Config&) {
        CU_ASSERT(launch(f, {1}, {n}, 0, din.ptr(), dout.ptr()));
        EXPECT_EQ(dout.download(), expected);
    });
}

uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

TEST_F(KernelTest, SixteenBitRoundTripOverAllBitPatterns) {
    CUfunction f = fn("roundtrip_16bit");
    DeviceBuffer<unsigned short> bf_out(65536), h_out(65536);
    DeviceBuffer<float> bf_float(65536), h_float(65536);
    for (const Config& c : {Config{1, "forward"}, Config{2, "reverse"}, Config{3, "random:5"}}) {
        SCOPED_TRACE(describe(c));
        emu_set_threads(c.threads);
        emu_set_schedule(c.schedule);
        CU_ASSERT(launch(f, {256}, {256}, 0, bf_out.ptr(), bf_float.ptr(), h_out.ptr(), h_float.ptr()));
        const auto bo = bf_out.download(), ho = h_out.download();
        const auto bfl = bf_float.download(), hfl = h_float.download();
        unsigned bad = 0;
        for (uint32_t p = 0; p < 65536; ++p) {
            // bf16: widening keeps the bits (payloads included); narrowing is exact for every
            // non-NaN value and gives the canonical NaN 0x7fff for every NaN.
            const bool bf_nan = (p & 0x7f80u) == 0x7f80u && (p & 0x7fu) != 0;
            if (float_bits(bfl[p]) != p << 16) ++bad, ADD_FAILURE() << "bf16 " << p << " widened wrongly";
            if (bo[p] != (bf_nan ? 0x7fffu : p)) ++bad, ADD_FAILURE() << "bf16 " << p << " -> " << bo[p];
            // f16: compare the widening with GCC's _Float16 (an independent implementation).
            const bool h_nan = (p & 0x7c00u) == 0x7c00u && (p & 0x3ffu) != 0;
            _Float16 h;
            const uint16_t p16 = static_cast<uint16_t>(p);
            memcpy(&h, &p16, 2);
            const uint32_t want = h_nan ? 0x7fffffffu : float_bits(static_cast<float>(h));
            if (float_bits(hfl[p]) != want) ++bad, ADD_FAILURE() << "f16 " << p << " widened to " << hfl[p];
            if (ho[p] != (h_nan ? 0x7fffu : p)) ++bad, ADD_FAILURE() << "f16 " << p << " -> " << ho[p];
            if (bad > 10) FAIL() << "too many mismatches";
        }
    }
}

// Independent round-to-nearest-even reference for bf16: compare the two neighbouring bf16 values
// in double precision.
uint16_t reference_bf16(float f) {
    if (std::isnan(f)) return 0x7fff;
    const uint32_t u = float_bits(f);
    if (std::isinf(f)) return static_cast<uint16_t>(u >> 16);
    const uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u; // truncated, and next away from zero
    float flo, fhi;
    memcpy(&flo, &lo, 4);
    memcpy(&fhi, &hi, 4);
    // Past the largest bf16 the next value is the overflow threshold 2^128 (rounds to infinity).
    const double vhi = std::isinf(fhi) ? std::copysign(0x1p128, static_cast<double>(f)) : static_cast<double>(fhi);
    const double dlo = std::fabs(static_cast<double>(f) - flo), dhi = std::fabs(vhi - f);
    if (dlo < dhi) return static_cast<uint16_t>(lo >> 16);
    if (dhi < dlo) return static_cast<uint16_t>(hi >> 16);
    return static_cast<uint16_t>(((lo >> 16) & 1u) ? hi >> 16 : lo >> 16); // tie: even
}

TEST_F(KernelTest, NarrowingMatchesIndependentReferences) {
    CUfunction f = fn("narrow_floats");
    std::vector<uint32_t> in;
    // Edge cases: signed zeros, infinities, NaNs, ties, largest finite values, subnormal boundaries.
    for (uint32_t u : {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u, 0x7f800001u,
                       0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x3f807fffu, 0x7f7fffffu, 0xff7fffffu, 0x7f7f8000u,
                       0x477fe000u, 0x477fefffu, 0x477ff000u, 0x477ff001u, 0x38800000u, 0x387fffffu, 0x33000000u,
                       0x33000001u, 0x337fffffu, 0x33800000u, 0x00000001u, 0x807fffffu, 0x3c000800u, 0x3c001000u})
        in.push_back(u);
    std::mt19937 rng(123);
    for (int i = 0; i < 200000; ++i) in.push_back(rng());
    // Dense sweep over the f16 range, including every subnormal.
    for (uint32_t u = 0x33000000u; u < 0x47800000u; u += 0x1f3u) in.push_back(u);
    const int n = static_cast<int>(in.size());
    DeviceBuffer<uint32_t> din(in);
    DeviceBuffer<unsigned short> dbf(n), dh(n);
    CU_ASSERT(launch(f, {(n + 255) / 256u}, {256}, 0, din.ptr(), dbf.ptr(), dh.ptr(), n));
    const auto bf = dbf.download(), h = dh.download();
    int bad = 0;
    for (int i = 0; i < n && bad < 10; ++i) {
        float x;
        memcpy(&x, &in[i], 4);
        const uint16_t want_bf = reference_bf16(x);
        uint16_t want_h;
        if (std::isnan(x)) {
            want_h = 0x7fff;
        } else {
            const _Float16 hv = static_cast<_Float16>(x); // libgcc's correctly rounded conversion
            memcpy(&want_h, &hv, 2);
        }
        if (bf[i] != want_bf) ++bad, ADD_FAILURE() << std::hex << "bf16(0x" << in[i] << ") = 0x" << bf[i] << ", want 0x" << want_bf;
        if (h[i] != want_h) ++bad, ADD_FAILURE() << std::hex << "f16(0x" << in[i] << ") = 0x" << h[i] << ", want 0x" << want_h;
    }
}

TEST_F(KernelTest, AtomicHistogram) {
    CUfunction f = fn("histogram");
    const int n = 10007, bins = 97;
    std::mt19937 rng(77);
    std::vector<unsigned> in(n);
    for (auto& v : in) v = rng();
    std::vector<unsigned> expected(bins, 0);
    for (unsigned v : in) ++expected[v % bins];
    DeviceBuffer<unsigned> din(in), dhist(bins);
    for_each_config([&](const Config&) {
        dhist.fill_bytes(0);
        CU_ASSERT(launch(f, {7}, {128}, 0, din.ptr(), dhist.ptr(), n, bins));
        EXPECT_EQ(dhist.download(), expected);
    });
}

TEST_F(KernelTest, AtomicOperations) {
    CUfunction f = fn("atomic_mix");
    const int n = 1000;
    std::vector<int> in(n);
    std::mt19937 rng(8);
    for (auto& v : in) v = static_cast<int>(rng() % 2001) - 1000;
    long long sum = 0, llsum = 0;
    int mx = std::numeric_limits<int>::min(), mn = std::numeric_limits<int>::max();
    unsigned ors = 0;
    for (int v : in) {
        sum += v;
        mx = std::max(mx, v);
        mn = std::min(mn, v);
        ors |= 1u << (v & 31);
        llsum += v + 1000;
    }
    const std::vector<int> init = {0, std::numeric_limits<int>::min(), std::numeric_limits<int>::max(), 0, -1, 0, 0, 0};
    const std::vector<int> expected = {static_cast<int>(sum), mx, mn, n, 0, static_cast<int>(ors), n, -n};
    DeviceBuffer<int> din(in), dacc(init.size());
    DeviceBuffer<float> dfsum(1);
    DeviceBuffer<unsigned long long> dll(1);
    for_each_config([&](const Config&) {
        dacc.upload(init);
        dfsum.upload({0.0f});
        dll.upload({0ull});
        CU_ASSERT(launch(f, {(n + 127) / 128u}, {128}, 0, din.ptr(), dacc.ptr(), dfsum.ptr(), dll.ptr(), n));
        EXPECT_EQ(dacc.download(), expected);
        EXPECT_EQ(dfsum.download()[0], 0.5f * n);
        EXPECT_EQ(dll.download()[0], static_cast<unsigned long long>(llsum));
    });
}

TEST_F(KernelTest, BuiltInIndicesOfThreeDimensionalLaunches) {
    CUfunction f = fn("record_indices");
    const Dim grid{3, 2, 2}, block{4, 3, 2};
    const unsigned per_block = 24, blocks = 12;
    DeviceBuffer<unsigned> dout(12 * per_block * blocks);
    for_each_config([&](const Config&) {
        dout.fill_bytes(0xab);
        CU_ASSERT(launch(f, grid, block, 0, dout.ptr()));
        const auto out = dout.download();
        for (unsigned bz = 0; bz < 2; ++bz)
            for (unsigned by = 0; by < 2; ++by)
                for (unsigned bx = 0; bx < 3; ++bx)
                    for (unsigned tz = 0; tz < 2; ++tz)
                        for (unsigned ty = 0; ty < 3; ++ty)
                            for (unsigned tx = 0; tx < 4; ++tx) {
                                const unsigned b = bx + 3 * (by + 2 * bz), t = tx + 4 * (ty + 3 * tz);
                                const std::vector<unsigned> want = {tx, ty, tz, bx, by, bz, 4, 3, 2, 3, 2, 2};
                                const std::vector<unsigned> got(out.begin() + 12 * (b * per_block + t),
                                                                out.begin() + 12 * (b * per_block + t + 1));
                                ASSERT_EQ(got, want) << "block " << b << " thread " << t;
                            }
    });
}

TEST_F(KernelTest, SchedulesRunThreadsInTheirOrder) {
    CUfunction f = fn("take_ticket");
    const unsigned block = 64, blocks = 5, n = block * blocks;
    DeviceBuffer<unsigned> counter(1), out(n);
    emu_set_threads(1); // one OS thread: the whole order is determined by the schedule
    auto order = [&](const char* schedule) {
        EXPECT_EQ(emu_set_schedule(schedule), 0);
        counter.fill_bytes(0);
        EXPECT_EQ(launch(f, {blocks}, {block}, 0, counter.ptr(), out.ptr()), CUDA_SUCCESS) << emu_last_error();
        return out.download();
    };
    std::vector<unsigned> forward(n), reverse(n);
    for (unsigned i = 0; i < n; ++i) {
        forward[i] = i;
        reverse[i] = n - 1 - i;
    }
    EXPECT_EQ(order("forward"), forward);
    EXPECT_EQ(order("reverse"), reverse);
    const auto r1 = order("random:1"), r1_again = order("random:1"), r2 = order("random:2");
    EXPECT_EQ(r1, r1_again) << "a seed fixes the order";
    EXPECT_NE(r1, r2) << "different seeds give different orders";
    EXPECT_NE(r1, forward);
    EXPECT_NE(r1, reverse);
    auto sorted = r1;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, forward) << "every thread runs exactly once";
    // Blocks are shuffled as a whole too: the first ticket of some block is not a multiple of 64 apart.
    bool blocks_permuted = false;
    for (unsigned b = 0; b < blocks; ++b) blocks_permuted |= *std::min_element(r1.begin() + b * block, r1.begin() + (b + 1) * block) != b * block;
    EXPECT_TRUE(blocks_permuted);
}

TEST_F(KernelTest, ManyBlocksAndLargeBlocks) {
    // 4096 blocks of 1024 threads of a barrier kernel: every block promotes to fibers.
    CUfunction f = fn("reduce_static_smem");
    const unsigned block = 1024, blocks = 64;
    const int n = static_cast<int>(block * blocks);
    const auto in = integer_floats(n, 99);
    const auto expected = block_sums(in, block, blocks);
    DeviceBuffer<float> din(in), dout(blocks);
    for (unsigned t : {1u, 2u}) {
        emu_set_threads(t);
        emu_set_schedule("random:99");
        CU_ASSERT(launch(f, {blocks}, {block}, 0, din.ptr(), dout.ptr(), n));
        EXPECT_EQ(dout.download(), expected);
    }
}

} // namespace

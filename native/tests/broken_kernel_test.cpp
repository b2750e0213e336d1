// Deliberately broken kernels and launches are caught: errors, never hangs or silent wrong answers.
// Kernels: native/tests/kernels/broken_kernels.cu (its @markers name the lines messages must cite).
#include <gmock/gmock.h>
#include <unistd.h>

#include <csignal>

#include "test_util.h"

using namespace emu_test;
using ::testing::AllOf;
using ::testing::HasSubstr;

namespace {

class BrokenKernelTest : public EmuTest {};

const std::string kFile = "broken_kernels.cu";

std::vector<float> ramp(size_t n) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i % 97) + 1.0f;
    return v;
}

std::vector<float> neighbour_sums(const std::vector<float>& in, unsigned block) {
    std::vector<float> out(in.size());
    for (size_t i = 0; i < in.size(); ++i) out[i] = in[i] + (i % block != 0 ? in[i - 1] : 0.0f);
    return out;
}

size_t mismatches(const std::vector<float>& a, const std::vector<float>& b) {
    size_t n = 0;
    for (size_t i = 0; i < a.size(); ++i) n += !(a[i] == b[i]);
    return n;
}

TEST_F(BrokenKernelTest, MissingBarrierIsCaughtUnderReverseAndRandomSchedules) {
    const unsigned block = 128, blocks = 4;
    const auto in = ramp(block * blocks);
    const auto expected = neighbour_sums(in, block);
    DeviceBuffer<float> din(in), dout(in.size());
    CUfunction broken = fn("missing_barrier"), fixed = fn("with_barrier");
    for (unsigned threads : {1u, 2u}) {
        emu_set_threads(threads);
        // forward runs thread t-1 to completion before thread t: the race hides, as it may on a GPU.
        emu_set_schedule("forward");
        CU_ASSERT(launch(broken, {blocks}, {block}, block * 4, din.ptr(), dout.ptr()));
        EXPECT_EQ(mismatches(dout.download(), expected), 0u) << "forward is not expected to expose this race";
        for (const char* s : {"reverse", "random:1", "random:2", "random:3"}) {
            SCOPED_TRACE(std::string(s) + " threads=" + std::to_string(threads));
            emu_set_schedule(s);
            CU_ASSERT(launch(broken, {blocks}, {block}, block * 4, din.ptr(), dout.ptr()));
            EXPECT_GT(mismatches(dout.download(), expected), 0u) << "the missing __syncthreads went unnoticed";
            CU_ASSERT(launch(fixed, {blocks}, {block}, block * 4, din.ptr(), dout.ptr()));
            EXPECT_EQ(mismatches(dout.download(), expected), 0u) << "the fixed kernel must pass";
        }
    }
}

TEST_F(BrokenKernelTest, DivergentBarrierNamesBothSites) {
    CUfunction f = fn("divergent_barrier");
    DeviceBuffer<int> dout(64);
    for_each_config([&](const Config&) {
        ASSERT_EQ(launch(f, {2}, {64}, 0, dout.ptr()), CUDA_ERROR_LAUNCH_FAILED);
        EXPECT_THAT(std::string(emu_last_error()),
                    AllOf(HasSubstr("divergent __syncthreads"), HasSubstr("divergent_barrier"),
                          HasSubstr(site(kFile, "@divergent-even")), HasSubstr(site(kFile, "@divergent-odd"))));
    });
}

TEST_F(BrokenKernelTest, BarrierShuffleDeadlockReportsWhoWaitsWhere) {
    CUfunction f = fn("barrier_shuffle_deadlock");
    DeviceBuffer<int> dout(64);
    for_each_config([&](const Config&) {
        ASSERT_EQ(launch(f, {3}, {64}, 0, dout.ptr()), CUDA_ERROR_LAUNCH_FAILED);
        EXPECT_THAT(std::string(emu_last_error()),
                    AllOf(HasSubstr("deadlock in block"), HasSubstr("32 thread(s) wait at __syncthreads"),
                          HasSubstr(site(kFile, "@deadlock-barrier")), HasSubstr("__shfl_xor_sync"),
                          HasSubstr(site(kFile, "@deadlock-shuffle"))));
    });
}

TEST_F(BrokenKernelTest, OverlappingDifferentWarpMasksAreReported) {
    CUfunction f = fn("mismatched_masks");
    DeviceBuffer<int> dout(32);
    for_each_config([&](const Config&) {
        ASSERT_EQ(launch(f, {1}, {32}, 0, dout.ptr()), CUDA_ERROR_LAUNCH_FAILED);
        EXPECT_THAT(std::string(emu_last_error()),
                    AllOf(HasSubstr("divergent warp operations"), HasSubstr(site(kFile, "@mask-half")),
                          HasSubstr(site(kFile, "@mask-full"))));
    });
}

TEST_F(BrokenKernelTest, LaneOutsideItsOwnMaskIsReported) {
    CUfunction f = fn("lane_not_in_mask");
    DeviceBuffer<int> dout(32);
    ASSERT_EQ(launch(f, {1}, {32}, 0, dout.ptr()), CUDA_ERROR_LAUNCH_FAILED);
    EXPECT_THAT(std::string(emu_last_error()),
                AllOf(HasSubstr("is not in its own mask 0x00000001"), HasSubstr(site(kFile, "@not-in-mask"))));
}

TEST_F(BrokenKernelTest, TrapFailsTheLaunchAndNamesTheBlock) {
    CUfunction f = fn("trap_in_block");
    DeviceBuffer<int> dout(8 * 32);
    for_each_config([&](const Config&) {
        ASSERT_EQ(launch(f, {8}, {32}, 0, dout.ptr(), 2), CUDA_ERROR_LAUNCH_FAILED);
        EXPECT_THAT(std::string(emu_last_error()),
                    AllOf(HasSubstr("__trap()"), HasSubstr(site(kFile, "@trap")), HasSubstr("block (2,0,0)"),
                          HasSubstr("thread (3,0,0)")));
    });
}

TEST_F(BrokenKernelTest, EmulatorRecoversAfterFailedLaunches) {
    CUfunction bad = fn("divergent_barrier"), good = fn("with_barrier");
    DeviceBuffer<int> dbad(64);
    const auto in = ramp(256);
    DeviceBuffer<float> din(in), dout(256);
    for (unsigned t : {1u, 2u}) {
        emu_set_threads(t);
        ASSERT_EQ(launch(bad, {4}, {64}, 0, dbad.ptr()), CUDA_ERROR_LAUNCH_FAILED);
        CU_ASSERT(launch(good, {2}, {128}, 512, din.ptr(), dout.ptr()));
        EXPECT_EQ(dout.download(), neighbour_sums(in, 128));
    }
}

TEST_F(BrokenKernelTest, LaunchLimitsAreEnforced) {
    CUfunction f = fn("touch_dynamic_smem");
    DeviceBuffer<float> dout(4);
    const uint64_t before = emu_launch_count("touch_dynamic_smem");
    const struct {
        Dim grid, block;
    } bad[] = {
        {{1}, {2048}},          // 2048 threads per block
        {{1}, {32, 32, 2}},     // 2048 threads in 3-D
        {{1}, {1, 1, 65}},      // block.z > 64
        {{1}, {1, 1025, 1}},    // block.y > 1024
        {{1, 65536, 1}, {32}},  // grid.y > 65535
        {{1, 1, 65536}, {32}},  // grid.z > 65535
        {{0}, {32}},            // empty grid
        {{1}, {0}},             // empty block
    };
    for (const auto& c : bad) {
        EXPECT_EQ(launch(f, c.grid, c.block, 0, dout.ptr(), 1), CUDA_ERROR_INVALID_VALUE)
            << c.grid.x << "," << c.grid.y << "," << c.grid.z << " x " << c.block.x << "," << c.block.y << "," << c.block.z;
    }
    EXPECT_EQ(launch(f, {1}, {2048}, 0, dout.ptr(), 1), CUDA_ERROR_INVALID_VALUE);
    EXPECT_THAT(std::string(emu_last_error()), HasSubstr("block (2048,1,1) exceeds the limits (1024,1024,64)"));
    EXPECT_EQ(launch(f, {1}, {32, 32, 2}, 0, dout.ptr(), 1), CUDA_ERROR_INVALID_VALUE);
    EXPECT_THAT(std::string(emu_last_error()), HasSubstr("2048 threads per block exceed 1024"));
    EXPECT_EQ(emu_launch_count("touch_dynamic_smem"), before) << "rejected launches must not run";
    CU_ASSERT(launch(f, {1}, {1024}, 0, dout.ptr(), 1)); // the limit itself is fine
}

TEST_F(BrokenKernelTest, DynamicSharedMemoryAbove48KiBNeedsTheOptIn) {
    CUfunction f = fn("touch_dynamic_smem");
    DeviceBuffer<float> dout(2);
    const int n48 = 48 * 1024 / 4, n64 = 64 * 1024 / 4;
    CU_ASSERT(launch(f, {2}, {256}, 48 * 1024, dout.ptr(), n48)); // exactly 48 KiB: no opt-in needed
    EXPECT_EQ(dout.download()[1], static_cast<float>(n48 - 1));

    EXPECT_EQ(launch(f, {2}, {256}, 64 * 1024, dout.ptr(), n64), CUDA_ERROR_INVALID_VALUE);
    EXPECT_THAT(std::string(emu_last_error()), AllOf(HasSubstr("65536 bytes of dynamic shared memory"),
                                                     HasSubstr("CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES")));

    CU_ASSERT(cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 64 * 1024));
    int value = 0;
    CU_ASSERT(cuFuncGetAttribute(&value, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, f));
    EXPECT_EQ(value, 64 * 1024);
    CU_ASSERT(launch(f, {2}, {256}, 64 * 1024, dout.ptr(), n64));
    EXPECT_EQ(dout.download()[0], static_cast<float>(n64 - 1));
    EXPECT_EQ(launch(f, {2}, {256}, 64 * 1024 + 4, dout.ptr(), n64), CUDA_ERROR_INVALID_VALUE);

    // The opt-in itself is capped at the device maximum (227 KiB on an H100) ...
    EXPECT_EQ(cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 232448 + 1), CUDA_ERROR_INVALID_VALUE);
    CU_ASSERT(cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 232448));
    CU_ASSERT(launch(f, {1}, {256}, 232448, dout.ptr(), 232448 / 4));
    // ... and so is a launch beyond it, whatever the attribute says.
    EXPECT_EQ(launch(f, {1}, {256}, 240 * 1024, dout.ptr(), 16), CUDA_ERROR_INVALID_VALUE);
    EXPECT_THAT(std::string(emu_last_error()), HasSubstr("device maximum"));
    // Read-only attributes cannot be set.
    EXPECT_EQ(cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_NUM_REGS, 32), CUDA_ERROR_INVALID_VALUE);
}

} // namespace

namespace {

// Runs stack_hog from scratch (in the death-test child).
void run_stack_hog() {
    CUcontext ctx = nullptr;
    CUmodule m = nullptr;
    CUfunction f = nullptr;
    CUdeviceptr out = 0;
    const auto img = fake_fatbin();
    if (cuInit(0) || cuDevicePrimaryCtxRetain(&ctx, 0) || cuCtxSetCurrent(ctx) || cuModuleLoadData(&m, img.data()) ||
        cuModuleGetFunction(&f, m, "stack_hog") || cuMemAlloc_v2(&out, 64))
        _exit(3); // setup failed: not the death we are looking for
    launch(f, {1}, {8}, 0, out, 0);
    _exit(0); // survived: the overflow went unnoticed
}

TEST(BrokenKernelDeathTest, StackOverflowFaultsOnTheGuardPage) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(run_stack_hog(), ::testing::KilledBySignal(SIGSEGV), "");
}

} // namespace

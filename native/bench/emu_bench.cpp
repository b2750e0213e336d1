// Emulator cost benchmark: what one emulated CUDA thread costs without barriers, and what one
// __syncthreads costs for 256- and 1024-thread blocks, on 1 and 2 OS threads.  Plain executable
// (not run by the tests):  native/build/bin/emu_bench [repetitions]
// Each number is the median of the repetitions; launches go through cuLaunchKernel like the C# side.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "emu_control.h"
#include "emu_cuda.h"

namespace {

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        if (CUresult rc_ = (expr); rc_ != CUDA_SUCCESS) {                                          \
            fprintf(stderr, "%s failed (%d): %s\n", #expr, rc_, emu_last_error());                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

int g_reps = 7;

// Median wall time in seconds of `reps` runs of f (after one warm-up run).
double median_seconds(const std::function<void()>& f) {
    f();
    std::vector<double> t;
    for (int r = 0; r < g_reps; ++r) {
        const auto a = std::chrono::steady_clock::now();
        f();
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

CUfunction g_saxpy, g_barriers, g_shuffles;

void launch(CUfunction f, unsigned grid, unsigned block, void** args) {
    CHECK(cuLaunchKernel(f, grid, 1, 1, block, 1, 1, 0, nullptr, args, nullptr));
}

} // namespace

int main(int argc, char** argv) {
    if (argc > 1) g_reps = std::max(1, atoi(argv[1]));
    CHECK(cuInit(0));
    CUcontext ctx;
    CHECK(cuDevicePrimaryCtxRetain(&ctx, 0));
    CHECK(cuCtxSetCurrent(ctx));
    const char* ptx = "//\n.version 7.8\n.target sm_90\n.address_size 64\n"
                      ".visible .entry bench_saxpy()\n{\n}\n.visible .entry bench_barriers()\n{\n}\n"
                      ".visible .entry bench_shuffles()\n{\n}\n";
    CUmodule m;
    CHECK(cuModuleLoadData(&m, ptx));
    CHECK(cuModuleGetFunction(&g_saxpy, m, "bench_saxpy"));
    CHECK(cuModuleGetFunction(&g_barriers, m, "bench_barriers"));
    CHECK(cuModuleGetFunction(&g_shuffles, m, "bench_shuffles"));

    const int n = 1 << 22;
    CUdeviceptr x, y, out;
    CHECK(cuMemAlloc_v2(&x, n * 4));
    CHECK(cuMemAlloc_v2(&y, n * 4));
    CHECK(cuMemsetD32_v2(x, 0x3f800000u, n));
    CHECK(cuMemsetD32_v2(y, 0, n));
    CHECK(cuMemAlloc_v2(&out, 64 * 1024 * 4));

    printf("emu_bench: median of %d runs, schedule forward\n\n", g_reps);
    printf("%-44s %12s %12s\n", "measurement", "1 thread", "2 threads");

    // 1. Barrier-free kernel: ns per emulated CUDA thread (direct mode, no switches).
    double saxpy[2];
    for (unsigned t : {1u, 2u}) {
        emu_set_threads(t);
        float a = 2.0f;
        int nn = n;
        void* args[] = {&y, &x, &a, &nn};
        saxpy[t - 1] = median_seconds([&] { launch(g_saxpy, n / 256, 256, args); }) / n * 1e9;
    }
    printf("%-44s %9.2f ns %9.2f ns\n", "barrier-free kernel, per emulated thread", saxpy[0], saxpy[1]);

    // 2. __syncthreads: (time with B barriers - time with 0) / (blocks * B).
    for (unsigned block : {256u, 1024u}) {
        const unsigned blocks = 32;
        const int iters = block == 256 ? 400 : 100;
        double per_barrier[2];
        for (unsigned t : {1u, 2u}) {
            emu_set_threads(t);
            int zero = 0, it = iters;
            void* base_args[] = {&out, &zero};
            void* args[] = {&out, &it};
            const double base = median_seconds([&] { launch(g_barriers, blocks, block, base_args); });
            const double with = median_seconds([&] { launch(g_barriers, blocks, block, args); });
            per_barrier[t - 1] = (with - base) / (double(blocks) * iters);
        }
        printf("%-44s %9.2f us %9.2f us\n", ("__syncthreads, " + std::to_string(block) + "-thread block (per barrier)").c_str(),
               per_barrier[0] * 1e6, per_barrier[1] * 1e6);
        printf("%-44s %9.2f ns %9.2f ns\n", ("  = per thread per barrier (" + std::to_string(block) + ")").c_str(),
               per_barrier[0] * 1e9 / block, per_barrier[1] * 1e9 / block);
    }

    // 3. Warp shuffle (one __shfl_xor_sync of a full warp, per warp).
    {
        const unsigned block = 256, blocks = 32;
        const int iters = 100;
        double per_shfl[2];
        for (unsigned t : {1u, 2u}) {
            emu_set_threads(t);
            int zero = 0, it = iters;
            void* base_args[] = {&out, &zero};
            void* args[] = {&out, &it};
            const double base = median_seconds([&] { launch(g_shuffles, blocks, block, base_args); });
            const double with = median_seconds([&] { launch(g_shuffles, blocks, block, args); });
            per_shfl[t - 1] = (with - base) / (double(blocks) * (block / 32) * iters * 5);
        }
        printf("%-44s %9.2f us %9.2f us\n", "__shfl_xor_sync, per full-warp shuffle", per_shfl[0] * 1e6,
               per_shfl[1] * 1e6);
    }

    // 4. Launch overhead of an empty-ish kernel (1 block of 32 threads).
    double overhead[2];
    for (unsigned t : {1u, 2u}) {
        emu_set_threads(t);
        float a = 1.0f;
        int nn = 32;
        void* args[] = {&y, &x, &a, &nn};
        overhead[t - 1] = median_seconds([&] {
            for (int i = 0; i < 1000; ++i) launch(g_saxpy, 2, 32, args);
        }) / 1000;
    }
    printf("%-44s %9.2f us %9.2f us\n", "launch of a 2-block x 32-thread kernel", overhead[0] * 1e6, overhead[1] * 1e6);

    CHECK(cuMemFree_v2(x));
    CHECK(cuMemFree_v2(y));
    CHECK(cuMemFree_v2(out));
    return 0;
}

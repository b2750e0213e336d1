// Emulator cost benchmark: what one emulated CUDA thread costs without barriers, and what one
// __syncthreads costs for 256- and 1024-thread blocks, on 1 and 2 OS threads (plus a warp shuffle and
// the launch overhead).  Plain executable, not run by the tests:
//
//   native/build/bin/emu_bench [repetitions]
//
// Launches go through cuLaunchKernel like the C# side.  Every number is a median over the repetitions
// (after one warm-up), reported twice: wall-clock time, and the process's CPU time (user + system,
// all threads) — the latter is what one unit of work costs when the machine is shared.
// Barrier and shuffle costs are differences between the same kernel with N and with 0 iterations,
// so launch and kernel-body costs cancel out.  Results: bench/results/emulator.md.
#include <sys/resource.h>

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

struct Cost {
    double wall = 0, cpu = 0; // seconds
};

double cpu_seconds() {
    rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_stime.tv_sec + 1e-6 * (r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

// Medians of wall and CPU time of `g_reps` runs of f (after one warm-up run).
Cost measure(const std::function<void()>& f) {
    f();
    std::vector<double> wall, cpu;
    for (int r = 0; r < g_reps; ++r) {
        const double c0 = cpu_seconds();
        const auto a = std::chrono::steady_clock::now();
        f();
        wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
        cpu.push_back(cpu_seconds() - c0);
    }
    std::sort(wall.begin(), wall.end());
    std::sort(cpu.begin(), cpu.end());
    return {wall[wall.size() / 2], cpu[cpu.size() / 2]};
}

void launch(CUfunction f, unsigned grid, unsigned block, void** args) {
    CHECK(cuLaunchKernel(f, grid, 1, 1, block, 1, 1, 0, nullptr, args, nullptr));
}

// One row: per-unit cost on 1 and 2 OS threads, as wall and CPU time, scaled to `unit` (1e9 = ns).
void row(const std::string& what, const char* unit_name, double scale, const Cost (&c)[2]) {
    printf("| %-46s | %8.2f %s | %8.2f %s | %8.2f %s | %8.2f %s |\n", what.c_str(), c[0].wall * scale, unit_name,
           c[1].wall * scale, unit_name, c[0].cpu * scale, unit_name, c[1].cpu * scale, unit_name);
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
    CUfunction saxpy, barriers, shuffles;
    CHECK(cuModuleGetFunction(&saxpy, m, "bench_saxpy"));
    CHECK(cuModuleGetFunction(&barriers, m, "bench_barriers"));
    CHECK(cuModuleGetFunction(&shuffles, m, "bench_shuffles"));
    CHECK(emu_set_schedule("forward"));

    const int n = 1 << 22;
    CUdeviceptr x, y, out;
    CHECK(cuMemAlloc_v2(&x, n * 4));
    CHECK(cuMemAlloc_v2(&y, n * 4));
    CHECK(cuMemsetD32_v2(x, 0x3f800000u, n));
    CHECK(cuMemsetD32_v2(y, 0, n));
    CHECK(cuMemAlloc_v2(&out, 64 * 1024 * 4));

    printf("emu_bench: medians of %d runs, schedule forward\n\n", g_reps);
    printf("| %-46s | %11s | %11s | %11s | %11s |\n", "per unit", "wall, 1 thr", "wall, 2 thr", "CPU, 1 thr",
           "CPU, 2 thr");
    printf("|%s|%s|%s|%s|%s|\n", std::string(48, '-').c_str(), std::string(13, '-').c_str(),
           std::string(13, '-').c_str(), std::string(13, '-').c_str(), std::string(13, '-').c_str());

    // 1. Barrier-free kernel (saxpy over 4M elements, 256-thread blocks): direct mode, no switches.
    {
        Cost c[2];
        for (unsigned t : {1u, 2u}) {
            CHECK(emu_set_threads(t));
            float a = 2.0f;
            int nn = n;
            void* args[] = {&y, &x, &a, &nn};
            const Cost k = measure([&] { launch(saxpy, n / 256, 256, args); });
            c[t - 1] = {k.wall / n, k.cpu / n};
        }
        row("barrier-free kernel, per emulated thread", "ns", 1e9, c);
    }

    // 2. __syncthreads: (time with B barriers - time with 0) / (blocks * B), 32 blocks.
    for (unsigned block : {256u, 1024u}) {
        const unsigned blocks = 32;
        const int iters = block == 256 ? 400 : 100;
        Cost c[2];
        for (unsigned t : {1u, 2u}) {
            CHECK(emu_set_threads(t));
            int zero = 0, it = iters;
            void* base_args[] = {&out, &zero};
            void* args[] = {&out, &it};
            const Cost base = measure([&] { launch(barriers, blocks, block, base_args); });
            const Cost with = measure([&] { launch(barriers, blocks, block, args); });
            const double units = double(blocks) * iters;
            c[t - 1] = {(with.wall - base.wall) / units, (with.cpu - base.cpu) / units};
        }
        row("__syncthreads of a " + std::to_string(block) + "-thread block", "us", 1e6, c);
        Cost per_thread[2] = {{c[0].wall / block, c[0].cpu / block}, {c[1].wall / block, c[1].cpu / block}};
        row("  the same, per thread", "ns", 1e9, per_thread);
    }

    // 3. Full-warp __shfl_xor_sync (warp_reduce_sum = 5 shuffles), 32 blocks of 256 threads.
    {
        const unsigned block = 256, blocks = 32;
        const int iters = 100;
        Cost c[2];
        for (unsigned t : {1u, 2u}) {
            CHECK(emu_set_threads(t));
            int zero = 0, it = iters;
            void* base_args[] = {&out, &zero};
            void* args[] = {&out, &it};
            const Cost base = measure([&] { launch(shuffles, blocks, block, base_args); });
            const Cost with = measure([&] { launch(shuffles, blocks, block, args); });
            const double units = double(blocks) * (block / 32) * iters * 5;
            c[t - 1] = {(with.wall - base.wall) / units, (with.cpu - base.cpu) / units};
        }
        row("__shfl_xor_sync of a full warp", "us", 1e6, c);
    }

    // 4. Launch overhead: a 2-block x 32-thread kernel.
    {
        Cost c[2];
        for (unsigned t : {1u, 2u}) {
            CHECK(emu_set_threads(t));
            float a = 1.0f;
            int nn = 64;
            void* args[] = {&y, &x, &a, &nn};
            const Cost k = measure([&] {
                for (int i = 0; i < 1000; ++i) launch(saxpy, 2, 32, args);
            });
            c[t - 1] = {k.wall / 1000, k.cpu / 1000};
        }
        row("launch of a 2 x 32-thread kernel", "us", 1e6, c);
    }

    CHECK(cuMemFree_v2(x));
    CHECK(cuMemFree_v2(y));
    CHECK(cuMemFree_v2(out));
    return 0;
}

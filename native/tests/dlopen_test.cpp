// Loads the emulator the way .NET does: dlopen(RTLD_LOCAL) of libcuda_emu.so / libcublas_emu.so by
// path, symbols by name, nothing linked.  This is where a too-large initial-exec TLS block or a
// missing RUNPATH would fail ("cannot allocate memory in static TLS block", "cannot open shared
// object").  Also checks the behaviour before cuInit and the BLOCKDANCE_EMU_* environment defaults.
//
//   dlopen_test <lib dir> <test kernel library> [--expect-threads N] [--expect-schedule S]
//                                               [--expect-env-error] [--big-frames]
// --big-frames: BLOCKDANCE_EMU_STACK_KIB is set high enough for stack_hog's 96 KiB frame.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "emu_control.h"
#include "emu_cublas.h"
#include "emu_cuda.h"

namespace {

std::string g_lib_dir, g_test_kernels;
int g_expect_threads = 0;
std::string g_expect_schedule;
bool g_expect_env_error = false;
bool g_big_frames = false;

template <class F> F sym(void* lib, const char* name) {
    void* p = dlsym(lib, name);
    EXPECT_NE(p, nullptr) << name << ": " << dlerror();
    return reinterpret_cast<F>(p);
}

#define BIND(lib, name) auto name = sym<decltype(&::name)>(lib, #name)

TEST(DlopenTest, EmulatorWorksWhenLoadedLikeDotNetLoadsIt) {
    void* cuda = dlopen((g_lib_dir + "/libcuda_emu.so").c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(cuda, nullptr) << dlerror();
    BIND(cuda, cuInit);
    BIND(cuda, cuDeviceGetCount);
    BIND(cuda, cuMemAlloc_v2);
    BIND(cuda, cuMemFree_v2);
    BIND(cuda, cuMemcpyHtoD_v2);
    BIND(cuda, cuMemcpyDtoH_v2);
    BIND(cuda, cuDevicePrimaryCtxRetain);
    BIND(cuda, cuCtxSetCurrent);
    BIND(cuda, cuModuleLoadData);
    BIND(cuda, cuModuleGetFunction);
    BIND(cuda, cuLaunchKernel);
    BIND(cuda, emu_last_error);
    BIND(cuda, emu_get_threads);
    BIND(cuda, emu_get_schedule);
    BIND(cuda, emu_set_threads);
    ASSERT_FALSE(HasFailure());

    // Like the real driver: nothing works before cuInit.
    int count = -1;
    EXPECT_EQ(cuDeviceGetCount(&count), CUDA_ERROR_NOT_INITIALIZED);
    CUdeviceptr p = 0;
    EXPECT_EQ(cuMemAlloc_v2(&p, 16), CUDA_ERROR_NOT_INITIALIZED);

    if (g_expect_env_error) {
        EXPECT_EQ(cuInit(0), CUDA_ERROR_INVALID_VALUE);
        EXPECT_NE(std::string(emu_last_error()).find("BLOCKDANCE_EMU_"), std::string::npos) << emu_last_error();
        return;
    }
    ASSERT_EQ(cuInit(0), CUDA_SUCCESS) << emu_last_error();
    if (g_expect_threads != 0) {
        EXPECT_EQ(emu_get_threads(), static_cast<unsigned>(g_expect_threads));
    }
    if (!g_expect_schedule.empty()) {
        EXPECT_EQ(std::string(emu_get_schedule()), g_expect_schedule);
    }

    // Test kernels from their own library, also dlopen()ed locally: they register with the same runtime.
    void* kernels = dlopen(g_test_kernels.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(kernels, nullptr) << dlerror();

    CUcontext ctx = nullptr;
    ASSERT_EQ(cuDevicePrimaryCtxRetain(&ctx, 0), CUDA_SUCCESS);
    ASSERT_EQ(cuCtxSetCurrent(ctx), CUDA_SUCCESS);
    const std::string ptx = ".version 7.8\n.target sm_90\n.address_size 64\n.visible .entry reduce_static_smem()\n{\n}\n";
    CUmodule m = nullptr;
    ASSERT_EQ(cuModuleLoadData(&m, ("//\n" + ptx).c_str()), CUDA_SUCCESS) << emu_last_error();
    CUfunction f = nullptr;
    ASSERT_EQ(cuModuleGetFunction(&f, m, "reduce_static_smem"), CUDA_SUCCESS) << emu_last_error();

    // A barrier kernel (fibers, static shared memory in the dlopen()ed library's TLS) on every thread count.
    const int n = 4096;
    std::vector<float> in(n);
    for (int i = 0; i < n; ++i) in[i] = static_cast<float>(i % 13);
    CUdeviceptr din = 0, dout = 0;
    ASSERT_EQ(cuMemAlloc_v2(&din, n * 4), CUDA_SUCCESS);
    ASSERT_EQ(cuMemAlloc_v2(&dout, 16 * 4), CUDA_SUCCESS);
    ASSERT_EQ(cuMemcpyHtoD_v2(din, in.data(), n * 4), CUDA_SUCCESS);
    for (unsigned threads : {1u, 2u, 4u}) {
        if (g_expect_threads == 0) emu_set_threads(threads);
        int nn = n;
        void* args[] = {&din, &dout, &nn};
        ASSERT_EQ(cuLaunchKernel(f, 16, 1, 1, 256, 1, 1, 0, nullptr, args, nullptr), CUDA_SUCCESS) << emu_last_error();
        std::vector<float> out(16);
        ASSERT_EQ(cuMemcpyDtoH_v2(out.data(), dout, 16 * 4), CUDA_SUCCESS);
        for (int b = 0; b < 16; ++b) {
            float want = 0;
            for (int i = 0; i < 256; ++i) want += in[b * 256 + i];
            EXPECT_EQ(out[b], want) << "block " << b;
        }
    }
    if (g_big_frames) {
        // 96 KiB of locals per thread: faults with the default 64 KiB stacks, runs with 256 KiB.
        ASSERT_EQ(cuModuleLoadData(&m, "//\n.version 7.8\n.target sm_90\n.entry stack_hog()\n{\n}\n"), CUDA_SUCCESS);
        CUfunction hog = nullptr;
        ASSERT_EQ(cuModuleGetFunction(&hog, m, "stack_hog"), CUDA_SUCCESS) << emu_last_error();
        int zero = 0;
        void* args[] = {&dout, &zero};
        ASSERT_EQ(cuLaunchKernel(hog, 2, 1, 1, 8, 1, 1, 0, nullptr, args, nullptr), CUDA_SUCCESS) << emu_last_error();
        std::vector<int> out(8);
        ASSERT_EQ(cuMemcpyDtoH_v2(out.data(), dout, 8 * 4), CUDA_SUCCESS);
        EXPECT_EQ(out, std::vector<int>(8, 1));
    }
    EXPECT_EQ(cuMemFree_v2(din), CUDA_SUCCESS);
    EXPECT_EQ(cuMemFree_v2(dout), CUDA_SUCCESS);

    // cuBLAS from its own dlopen()ed library.
    void* blas = dlopen((g_lib_dir + "/libcublas_emu.so").c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(blas, nullptr) << dlerror();
    BIND(blas, cublasCreate_v2);
    BIND(blas, cublasSgemm_v2);
    BIND(blas, cublasDestroy_v2);
    ASSERT_FALSE(HasFailure());
    cublasHandle_t h = nullptr;
    ASSERT_EQ(cublasCreate_v2(&h), CUBLAS_STATUS_SUCCESS);
    float a[4] = {1, 2, 3, 4}, c[4] = {};
    const float one = 1, zero = 0;
    ASSERT_EQ(cublasSgemm_v2(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, a, 2, a, 2, &zero, c, 2), CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(std::vector<float>(c, c + 4), (std::vector<float>{7, 10, 15, 22}));
    EXPECT_EQ(cublasDestroy_v2(h), CUBLAS_STATUS_SUCCESS);
}

} // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (argc < 3) {
        fprintf(stderr, "usage: dlopen_test <lib dir> <test kernel library> [options]\n");
        return 2;
    }
    g_lib_dir = argv[1];
    g_test_kernels = argv[2];
    for (int i = 3; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--expect-threads" && i + 1 < argc) g_expect_threads = atoi(argv[++i]);
        else if (a == "--expect-schedule" && i + 1 < argc) g_expect_schedule = argv[++i];
        else if (a == "--expect-env-error") g_expect_env_error = true;
        else if (a == "--big-frames") g_big_frames = true;
        else {
            fprintf(stderr, "unknown option %s\n", a.c_str());
            return 2;
        }
    }
    return RUN_ALL_TESTS();
}

// Shared helpers of the native emulator tests: a fixture with a current context, typed device
// buffers, launches with automatic kernelParams, and the schedule/thread-count matrix.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "emu_control.h"
#include "emu_cuda.h"

#ifndef EMU_TEST_KERNEL_DIR
#error "EMU_TEST_KERNEL_DIR must point at native/tests/kernels"
#endif

#define CU_ASSERT(expr)                                                                            \
    do {                                                                                           \
        const CUresult cu_assert_rc_ = (expr);                                                     \
        ASSERT_EQ(cu_assert_rc_, CUDA_SUCCESS) << #expr << ": " << emu_last_error();               \
    } while (0)

namespace emu_test {

struct Dim {
    unsigned x = 1, y = 1, z = 1;
};

// The matrix every correct kernel must pass: OS threads x schedules.
struct Config {
    unsigned threads;
    const char* schedule;
};

inline std::vector<Config> all_configs() {
    std::vector<Config> out;
    for (unsigned t : {1u, 2u, 3u})
        for (const char* s : {"forward", "reverse", "random:1", "random:7", "random:20250101"}) out.push_back({t, s});
    return out;
}

inline std::string describe(const Config& c) {
    return "threads=" + std::to_string(c.threads) + " schedule=" + c.schedule;
}

// Runs body() under every configuration (restoring the defaults afterwards).
inline void for_each_config(const std::function<void(const Config&)>& body) {
    for (const Config& c : all_configs()) {
        SCOPED_TRACE(describe(c));
        ASSERT_EQ(emu_set_threads(c.threads), 0);
        ASSERT_EQ(emu_set_schedule(c.schedule), 0);
        body(c);
        if (::testing::Test::HasFatalFailure()) break;
    }
    emu_set_threads(0);
    emu_set_schedule("forward");
}

// PTX text that declares the given entry points (what NVRTC would emit, minus the code).
inline std::string fake_ptx(std::initializer_list<std::string> entries, int sm = 90) {
    std::string s = "//\n// emulator test module\n//\n.version 7.8\n.target sm_" + std::to_string(sm) +
                    "\n.address_size 64\n\n";
    for (const auto& e : entries) s += ".visible .entry " + e + "()\n{\n\tret;\n}\n";
    return s;
}

// A fatbinary header: names are not listed, so every registered kernel resolves.
inline std::vector<unsigned char> fake_fatbin() {
    std::vector<unsigned char> img(64, 0);
    const uint32_t magic = 0xBA55ED50u;
    memcpy(img.data(), &magic, 4);
    return img;
}

// Line number of the first line of a test kernel file containing `marker`.
inline int marker_line(const std::string& file, const std::string& marker) {
    std::ifstream in(std::string(EMU_TEST_KERNEL_DIR) + "/" + file);
    std::string line;
    for (int n = 1; std::getline(in, line); ++n)
        if (line.find(marker) != std::string::npos) return n;
    ADD_FAILURE() << "marker " << marker << " not found in " << file;
    return -1;
}

inline std::string site(const std::string& file, const std::string& marker) {
    return file + ":" + std::to_string(marker_line(file, marker));
}

template <class T> class DeviceBuffer {
public:
    explicit DeviceBuffer(size_t n) : n_(n) {
        if (cuMemAlloc_v2(&ptr_, n * sizeof(T)) != CUDA_SUCCESS) ADD_FAILURE() << "cuMemAlloc_v2: " << emu_last_error();
    }
    explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
    ~DeviceBuffer() {
        if (ptr_ != 0) cuMemFree_v2(ptr_);
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    void upload(const std::vector<T>& host) {
        EXPECT_EQ(cuMemcpyHtoD_v2(ptr_, host.data(), host.size() * sizeof(T)), CUDA_SUCCESS) << emu_last_error();
    }
    std::vector<T> download() const {
        std::vector<T> host(n_);
        EXPECT_EQ(cuMemcpyDtoH_v2(host.data(), ptr_, n_ * sizeof(T)), CUDA_SUCCESS) << emu_last_error();
        return host;
    }
    void fill_bytes(unsigned char v) { EXPECT_EQ(cuMemsetD8_v2(ptr_, v, n_ * sizeof(T)), CUDA_SUCCESS); }
    CUdeviceptr ptr() const { return ptr_; }
    size_t size() const { return n_; }

private:
    CUdeviceptr ptr_ = 0;
    size_t n_;
};

// Launches with kernelParams built from the arguments' addresses, exactly as the C# launchers do.
template <class... A> CUresult launch(CUfunction f, Dim grid, Dim block, unsigned smem, A... args) {
    if constexpr (sizeof...(A) == 0) {
        return cuLaunchKernel(f, grid.x, grid.y, grid.z, block.x, block.y, block.z, smem, nullptr, nullptr, nullptr);
    } else {
        void* params[] = {static_cast<void*>(&args)...};
        return cuLaunchKernel(f, grid.x, grid.y, grid.z, block.x, block.y, block.z, smem, nullptr, params, nullptr);
    }
}

// Fixture: cuInit, the primary context current on this thread, one module resolving any kernel.
class EmuTest : public ::testing::Test {
protected:
    void SetUp() override {
        CU_ASSERT(cuInit(0));
        CU_ASSERT(cuDevicePrimaryCtxRetain(&ctx_, 0));
        CU_ASSERT(cuCtxSetCurrent(ctx_));
        const auto img = fake_fatbin();
        CU_ASSERT(cuModuleLoadData(&module_, img.data()));
        emu_set_threads(0);
        emu_set_schedule("forward");
    }
    void TearDown() override {
        if (module_ != nullptr) cuModuleUnload(module_);
        emu_set_threads(0);
        emu_set_schedule("forward");
        cuDevicePrimaryCtxRelease_v2(0);
    }
    CUfunction fn(const char* name) {
        CUfunction f = nullptr;
        const CUresult rc = cuModuleGetFunction(&f, module_, name);
        EXPECT_EQ(rc, CUDA_SUCCESS) << name << ": " << emu_last_error();
        return f;
    }

    CUcontext ctx_ = nullptr;
    CUmodule module_ = nullptr;
};

} // namespace emu_test

// The prelude and every kernel file are valid CUDA for the real compiler: NVRTC compiles each one for
// sm_80 and sm_90 (CUBIN, so ptxas runs too) with the prelude as an in-memory header, exactly as the
// C# runtime does.  Any error or warning fails the test with the full log.  Cross-checks: the PTX
// entry points of each file are exactly the kernels the emulator registered from it, and the CUBINs
// load through the emulated cuModuleLoadData (sm_90) or are rejected like an H100 would (sm_80).
//
// NVRTC is loaded with dlopen and hand-written prototypes (no NVIDIA headers).  Without it the tests
// report SKIPPED, never passed.
#include <dlfcn.h>
#include <gmock/gmock.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "emu_control.h"
#include "emu_cuda.h"

#ifndef EMU_TEST_KERNEL_DIR
#error "EMU_TEST_KERNEL_DIR must point at native/tests/kernels"
#endif
#ifndef EMU_PROJECT_KERNEL_DIR
#error "EMU_PROJECT_KERNEL_DIR must point at src/Kernels/cuda"
#endif

namespace {

// nvrtc.h, by hand.
using nvrtcProgram = struct _nvrtcProgram*;
using nvrtcResult = int;
struct Nvrtc {
    void* lib = nullptr;
    std::string soname;
    nvrtcResult (*version)(int*, int*) = nullptr;
    nvrtcResult (*create)(nvrtcProgram*, const char*, const char*, int, const char* const*, const char* const*) = nullptr;
    nvrtcResult (*compile)(nvrtcProgram, int, const char* const*) = nullptr;
    nvrtcResult (*log_size)(nvrtcProgram, size_t*) = nullptr;
    nvrtcResult (*log)(nvrtcProgram, char*) = nullptr;
    nvrtcResult (*ptx_size)(nvrtcProgram, size_t*) = nullptr;
    nvrtcResult (*ptx)(nvrtcProgram, char*) = nullptr;
    nvrtcResult (*cubin_size)(nvrtcProgram, size_t*) = nullptr;
    nvrtcResult (*cubin)(nvrtcProgram, char*) = nullptr;
    nvrtcResult (*destroy)(nvrtcProgram*) = nullptr;
    const char* (*error_string)(nvrtcResult) = nullptr;
};

template <class F> bool bind(void* lib, const char* name, F& f) {
    f = reinterpret_cast<F>(dlsym(lib, name));
    return f != nullptr;
}

const Nvrtc* nvrtc() {
    static const Nvrtc* n = [] () -> const Nvrtc* {
        auto* r = new Nvrtc;
        for (const char* so : {"libnvrtc.so.11.2", "libnvrtc.so.12", "libnvrtc.so.13"}) {
            r->lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
            if (r->lib != nullptr) {
                r->soname = so;
                break;
            }
        }
        if (r->lib == nullptr) return nullptr;
        const bool ok = bind(r->lib, "nvrtcVersion", r->version) && bind(r->lib, "nvrtcCreateProgram", r->create) &&
                        bind(r->lib, "nvrtcCompileProgram", r->compile) &&
                        bind(r->lib, "nvrtcGetProgramLogSize", r->log_size) &&
                        bind(r->lib, "nvrtcGetProgramLog", r->log) && bind(r->lib, "nvrtcGetPTXSize", r->ptx_size) &&
                        bind(r->lib, "nvrtcGetPTX", r->ptx) && bind(r->lib, "nvrtcGetCUBINSize", r->cubin_size) &&
                        bind(r->lib, "nvrtcGetCUBIN", r->cubin) && bind(r->lib, "nvrtcDestroyProgram", r->destroy) &&
                        bind(r->lib, "nvrtcGetErrorString", r->error_string);
        return ok ? r : nullptr;
    }();
    return n;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

struct Output {
    std::string ptx;
    std::vector<char> cubin;
};

// Compiles `source` for sm_<arch>; on any error or warning, fails with the options and the full log.
bool compile(const std::string& name, const std::string& source, int arch, Output* out) {
    const Nvrtc& nv = *nvrtc();
    static const std::string prelude = read_file(std::string(EMU_PROJECT_KERNEL_DIR) + "/prelude.cuh");
    const char* headers[] = {prelude.c_str()};
    const char* include_names[] = {"prelude.cuh"};
    nvrtcProgram prog = nullptr;
    nvrtcResult rc = nv.create(&prog, source.c_str(), name.c_str(), 1, headers, include_names);
    EXPECT_EQ(rc, 0) << "nvrtcCreateProgram: " << nv.error_string(rc);
    if (rc != 0) return false;
    const std::string arch_opt = "--gpu-architecture=sm_" + std::to_string(arch);
    const char* options[] = {arch_opt.c_str(), "--std=c++17"};
    rc = nv.compile(prog, 2, options);
    size_t log_size = 0;
    nv.log_size(prog, &log_size);
    std::string log(log_size, '\0');
    if (log_size > 0) nv.log(prog, log.data());
    log.resize(strnlen(log.c_str(), log.size()));
    const bool warned = log.find("warning") != std::string::npos;
    EXPECT_TRUE(rc == 0 && !warned) << name << " with " << arch_opt << " --std=c++17: " << nv.error_string(rc)
                                    << "\n---- NVRTC log ----\n" << log;
    if (rc == 0) {
        size_t n = 0;
        nv.ptx_size(prog, &n);
        out->ptx.assign(n, '\0');
        nv.ptx(prog, out->ptx.data());
        nv.cubin_size(prog, &n);
        out->cubin.assign(n, 0);
        if (n != 0) nv.cubin(prog, out->cubin.data());
    }
    nv.destroy(&prog);
    return rc == 0 && !warned;
}

std::set<std::string> ptx_entries(const std::string& ptx) {
    std::set<std::string> names;
    for (size_t p = ptx.find(".entry "); p != std::string::npos; p = ptx.find(".entry ", p + 1)) {
        size_t b = p + 7, e = b;
        while (e < ptx.size() && (isalnum(static_cast<unsigned char>(ptx[e])) || ptx[e] == '_')) ++e;
        names.insert(ptx.substr(b, e - b));
    }
    return names;
}

// Kernels the emulator registered from `source` (a path relative to the repository root).
std::set<std::string> registered_from(const std::string& source) {
    std::set<std::string> names;
    std::istringstream list(emu_kernel_list());
    std::string name, sig, src;
    while (list >> name >> sig >> src)
        if (src == source) names.insert(name);
    return names;
}

std::vector<std::filesystem::path> cu_files(const std::string& dir) {
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().extension() == ".cu") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
}

class NvrtcCompileTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (nvrtc() == nullptr) GTEST_SKIP() << "libnvrtc.so.11.2 (or .12/.13) cannot be dlopen()ed: " << dlerror();
        int major = 0, minor = 0;
        nvrtc()->version(&major, &minor);
        RecordProperty("nvrtc", nvrtc()->soname + " " + std::to_string(major) + "." + std::to_string(minor));
        ASSERT_EQ(cuInit(0), CUDA_SUCCESS);
        ASSERT_EQ(cuDevicePrimaryCtxRetain(&ctx_, 0), CUDA_SUCCESS);
        ASSERT_EQ(cuCtxSetCurrent(ctx_), CUDA_SUCCESS);
    }
    void TearDown() override {
        if (ctx_ != nullptr) cuDevicePrimaryCtxRelease_v2(0);
    }

    // Compiles one kernel file for both architectures and runs the cross-checks.
    void check_file(const std::filesystem::path& path, const std::string& repo_relative) {
        SCOPED_TRACE(repo_relative);
        const std::string source = read_file(path.string());
        Output sm80, sm90;
        const bool ok80 = compile(path.filename().string(), source, 80, &sm80);
        const bool ok90 = compile(path.filename().string(), source, 90, &sm90);
        if (!ok80 || !ok90) return;
        ASSERT_FALSE(sm90.cubin.empty()) << "sm_90 produced no CUBIN";
        const std::set<std::string> entries = ptx_entries(sm90.ptx);
        EXPECT_EQ(entries, registered_from(repo_relative))
            << "the kernels NVRTC sees differ from those the emulator exported from this file";
        CUmodule m = nullptr;
        ASSERT_EQ(cuModuleLoadData(&m, sm90.cubin.data()), CUDA_SUCCESS) << emu_last_error();
        for (const auto& e : entries) {
            CUfunction f = nullptr;
            EXPECT_EQ(cuModuleGetFunction(&f, m, e.c_str()), CUDA_SUCCESS) << e << ": " << emu_last_error();
        }
        EXPECT_EQ(cuModuleUnload(m), CUDA_SUCCESS);
        ASSERT_EQ(cuModuleLoadData(&m, sm90.ptx.c_str()), CUDA_SUCCESS) << emu_last_error();
        EXPECT_EQ(cuModuleUnload(m), CUDA_SUCCESS);
        EXPECT_EQ(cuModuleLoadData(&m, sm80.cubin.data()), CUDA_ERROR_NO_BINARY_FOR_GPU)
            << "an sm_80 CUBIN must not load on the emulated sm_90 device";
    }

    CUcontext ctx_ = nullptr;
};

TEST_F(NvrtcCompileTest, PreludeCompilesOnItsOwn) {
    const std::string source = R"(#include "prelude.cuh"
extern "C" __global__ void prelude_smoke(const bf16* a, const f16* b, bf16x2* c, float* out) {
    DYN_SMEM(float, dyn);
    __shared__ float scratch[32];
    const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    const float2 pair = to_float2(c[i]);
    dyn[threadIdx.x] = to_float(a[i]) + to_float(b[i]) + pair.x + pair.y;
    const float s = block_reduce_sum(dyn[threadIdx.x], scratch) + block_reduce_max(warp_reduce_max(1.0f), scratch);
    out[i] = s + warp_reduce_sum(to_float(from_float<f16>(s))) + to_float(from_float<bf16>(s)) +
             from_float<float>(s) + (float)ceil_div(i, 3u) + (float)(int64_t)(uint64_t)(int32_t)(uint32_t)
             (int16_t)(uint16_t)(int8_t)(uint8_t)i;
}
)";
    Output sm80, sm90;
    EXPECT_TRUE(compile("prelude_smoke.cu", source, 80, &sm80));
    EXPECT_TRUE(compile("prelude_smoke.cu", source, 90, &sm90));
    EXPECT_NE(sm90.ptx.find("cvt.rn.bf16.f32"), std::string::npos) << "the inline-PTX bf16 conversion is used";
    EXPECT_NE(sm90.ptx.find("cvt.rn.f16.f32"), std::string::npos);
}

TEST_F(NvrtcCompileTest, TestKernelsCompileForSm80AndSm90) {
    const auto files = cu_files(EMU_TEST_KERNEL_DIR);
    ASSERT_FALSE(files.empty());
    for (const auto& f : files) check_file(f, "native/tests/kernels/" + f.filename().string());
}

TEST_F(NvrtcCompileTest, ProjectKernelsCompileForSm80AndSm90) {
    const auto files = cu_files(EMU_PROJECT_KERNEL_DIR);
    if (files.empty()) GTEST_SKIP() << "src/Kernels/cuda has no .cu files yet";
    for (const auto& f : files) check_file(f, "src/Kernels/cuda/" + f.filename().string());
}

} // namespace

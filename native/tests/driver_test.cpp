// The CUDA driver surface of libcuda_emu.so and the emulator-control API.
#include <elf.h>
#include <gmock/gmock.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "test_util.h"

using namespace emu_test;
using ::testing::AllOf;
using ::testing::HasSubstr;

namespace {

class DriverTest : public EmuTest {};

TEST_F(DriverTest, AnswersLikeAnH100) {
    int count = 0;
    CU_ASSERT(cuDeviceGetCount(&count));
    EXPECT_EQ(count, 1);
    CUdevice dev = -1;
    CU_ASSERT(cuDeviceGet(&dev, 0));
    EXPECT_EQ(dev, 0);
    EXPECT_EQ(cuDeviceGet(&dev, 1), CUDA_ERROR_INVALID_DEVICE);
    char name[128];
    CU_ASSERT(cuDeviceGetName(name, sizeof(name), 0));
    EXPECT_THAT(std::string(name), HasSubstr("H100"));
    auto attr = [](int a) {
        int v = -12345;
        EXPECT_EQ(cuDeviceGetAttribute(&v, a, 0), CUDA_SUCCESS) << a;
        return v;
    };
    EXPECT_EQ(attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR), 9);
    EXPECT_EQ(attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR), 0);
    EXPECT_EQ(attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT), 132);
    EXPECT_EQ(attr(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK), 1024);
    EXPECT_EQ(attr(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z), 64);
    EXPECT_EQ(attr(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X), 2147483647);
    EXPECT_EQ(attr(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y), 65535);
    EXPECT_EQ(attr(CU_DEVICE_ATTRIBUTE_WARP_SIZE), 32);
    EXPECT_EQ(attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK), 49152);
    EXPECT_EQ(attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN), 232448);
    EXPECT_EQ(attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR), 233472);
    EXPECT_EQ(attr(CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE), 50 * 1024 * 1024);
    EXPECT_EQ(attr(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR), 2048);
    EXPECT_EQ(attr(CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING), 1);
    int v = 0;
    EXPECT_EQ(cuDeviceGetAttribute(&v, 9999, 0), CUDA_ERROR_INVALID_VALUE);
    size_t total = 0;
    CU_ASSERT(cuDeviceTotalMem_v2(&total, 0));
    EXPECT_GT(total, 80ull * 1000 * 1000 * 1000);
    int version = 0;
    CU_ASSERT(cuDriverGetVersion(&version));
    EXPECT_GE(version, 12000);
}

TEST_F(DriverTest, ErrorNamesAndStrings) {
    const char* s = nullptr;
    CU_ASSERT(cuGetErrorName(CUDA_ERROR_INVALID_VALUE, &s));
    EXPECT_STREQ(s, "CUDA_ERROR_INVALID_VALUE");
    CU_ASSERT(cuGetErrorName(CUDA_ERROR_NOT_FOUND, &s));
    EXPECT_STREQ(s, "CUDA_ERROR_NOT_FOUND");
    CU_ASSERT(cuGetErrorName(CUDA_ERROR_LAUNCH_FAILED, &s));
    EXPECT_STREQ(s, "CUDA_ERROR_LAUNCH_FAILED");
    CU_ASSERT(cuGetErrorString(CUDA_ERROR_INVALID_VALUE, &s));
    EXPECT_STREQ(s, "invalid argument");
    EXPECT_EQ(cuGetErrorName(12345, &s), CUDA_ERROR_INVALID_VALUE);
    EXPECT_EQ(s, nullptr);
}

TEST_F(DriverTest, ContextIsPerThreadAndRequired) {
    std::thread([&] {
        CUdeviceptr p = 0;
        EXPECT_EQ(cuMemAlloc_v2(&p, 64), CUDA_ERROR_INVALID_CONTEXT) << "a new thread has no current context";
        EXPECT_THAT(std::string(emu_last_error()), HasSubstr("cuCtxSetCurrent"));
        CUcontext none = reinterpret_cast<CUcontext>(1);
        EXPECT_EQ(cuCtxGetCurrent(&none), CUDA_SUCCESS);
        EXPECT_EQ(none, nullptr);
        EXPECT_EQ(cuCtxSetCurrent(ctx_), CUDA_SUCCESS);
        EXPECT_EQ(cuMemAlloc_v2(&p, 64), CUDA_SUCCESS);
        EXPECT_EQ(cuMemFree_v2(p), CUDA_SUCCESS);
    }).join();

    // Push/pop and a separate context whose destruction frees its memory.
    emu_counters c0{};
    emu_get_counters(&c0);
    CUcontext other = nullptr;
    CU_ASSERT(cuCtxCreate_v2(&other, 0, 0));
    CUcontext cur = nullptr;
    CU_ASSERT(cuCtxGetCurrent(&cur));
    EXPECT_EQ(cur, other);
    CUdeviceptr p = 0;
    CU_ASSERT(cuMemAlloc_v2(&p, 1000));
    emu_counters c1{};
    emu_get_counters(&c1);
    EXPECT_EQ(c1.live_allocations, c0.live_allocations + 1);
    CU_ASSERT(cuCtxDestroy_v2(other));
    emu_get_counters(&c1);
    EXPECT_EQ(c1.live_allocations, c0.live_allocations);
    EXPECT_EQ(c1.live_bytes, c0.live_bytes);
    CU_ASSERT(cuCtxGetCurrent(&cur));
    EXPECT_EQ(cur, ctx_) << "destroying the current context pops it";
    EXPECT_EQ(cuCtxSetCurrent(other), CUDA_ERROR_INVALID_CONTEXT);
    CU_ASSERT(cuCtxPushCurrent_v2(ctx_));
    CU_ASSERT(cuCtxPopCurrent_v2(&cur));
    EXPECT_EQ(cur, ctx_);
    CU_ASSERT(cuCtxSynchronize());
}

TEST_F(DriverTest, MemoryCopiesMemsetsAndCounters) {
    emu_reset_counters();
    emu_counters c{};
    emu_get_counters(&c);
    const uint64_t live0 = c.live_allocations, bytes0 = c.live_bytes;
    EXPECT_EQ(c.htod_copies + c.dtoh_copies + c.dtod_copies + c.launches + c.gemm_calls + c.memsets, 0u);

    CUdeviceptr a = 0, b = 0;
    CU_ASSERT(cuMemAlloc_v2(&a, 1000));
    CU_ASSERT(cuMemAlloc_v2(&b, 24));
    EXPECT_EQ(a % 256, 0u);
    emu_get_counters(&c);
    EXPECT_EQ(c.live_allocations, live0 + 2);
    EXPECT_EQ(c.live_bytes, bytes0 + 1024);

    // Fresh device memory is poisoned (all bits set) so that reads before writes show.
    std::vector<unsigned char> host(1000);
    CU_ASSERT(cuMemcpyDtoH_v2(host.data(), a, 1000));
    EXPECT_THAT(host, ::testing::Each(0xff));

    std::vector<unsigned char> src(1000);
    for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<unsigned char>(i * 7);
    CU_ASSERT(cuMemcpyHtoD_v2(a, src.data(), 1000));
    CU_ASSERT(cuMemcpyHtoDAsync_v2(a + 10, src.data(), 5, nullptr));
    CU_ASSERT(cuMemcpyDtoD_v2(b, a + 100, 24));
    CU_ASSERT(cuMemcpyDtoDAsync_v2(b, b + 8, 8, nullptr)); // overlapping ranges are moved, not smeared
    std::vector<unsigned char> got(24);
    CU_ASSERT(cuMemcpyDtoHAsync_v2(got.data(), b, 24, nullptr));
    std::vector<unsigned char> want(src.begin() + 100, src.begin() + 124);
    std::copy(want.begin() + 8, want.begin() + 16, want.begin());
    EXPECT_EQ(got, want);

    CU_ASSERT(cuMemsetD8_v2(a, 0x5a, 3));
    CU_ASSERT(cuMemsetD16_v2(a + 4, 0x1234, 2));
    CU_ASSERT(cuMemsetD32Async(a + 8, 0xdeadbeef, 1, nullptr));
    CU_ASSERT(cuMemsetD8Async(a + 12, 1, 1, nullptr));
    CU_ASSERT(cuMemsetD16Async(a + 14, 2, 1, nullptr));
    CU_ASSERT(cuMemsetD32_v2(a + 16, 3, 1));
    std::vector<unsigned char> head(20); // bytes 10..14 came from the HtoDAsync copy of src[0..4]
    CU_ASSERT(cuMemcpyDtoH_v2(head.data(), a, 20));
    const std::vector<unsigned char> head_want = {0x5a, 0x5a, 0x5a, src[3], 0x34, 0x12, 0x34, 0x12, 0xef, 0xbe,
                                                  0xad, 0xde, 1, src[3], 2, 0, 3, 0, 0, 0};
    EXPECT_EQ(head, head_want);

    emu_get_counters(&c);
    EXPECT_EQ(c.htod_copies, 2u);
    EXPECT_EQ(c.htod_bytes, 1005u);
    EXPECT_EQ(c.dtoh_copies, 3u);
    EXPECT_EQ(c.dtoh_bytes, 1000u + 24 + 20);
    EXPECT_EQ(c.dtod_copies, 2u);
    EXPECT_EQ(c.dtod_bytes, 32u);
    EXPECT_EQ(c.memsets, 6u);

    // Out-of-range and misaligned operations fail and say why; they count nothing.
    EXPECT_EQ(cuMemcpyHtoD_v2(a + 990, src.data(), 11), CUDA_ERROR_INVALID_VALUE);
    EXPECT_THAT(std::string(emu_last_error()), HasSubstr("not inside a device allocation"));
    EXPECT_EQ(cuMemcpyDtoH_v2(host.data(), b, 25), CUDA_ERROR_INVALID_VALUE);
    EXPECT_EQ(cuMemcpyDtoD_v2(a, reinterpret_cast<CUdeviceptr>(src.data()), 8), CUDA_ERROR_INVALID_VALUE);
    EXPECT_EQ(cuMemsetD32_v2(a + 2, 0, 1), CUDA_ERROR_INVALID_VALUE);
    EXPECT_EQ(cuMemsetD8_v2(b, 0, 25), CUDA_ERROR_INVALID_VALUE);
    EXPECT_EQ(cuMemFree_v2(a + 1), CUDA_ERROR_INVALID_VALUE);
    CUdeviceptr z = 0;
    EXPECT_EQ(cuMemAlloc_v2(&z, 0), CUDA_ERROR_INVALID_VALUE);
    emu_counters c2{};
    emu_get_counters(&c2);
    EXPECT_EQ(c2.htod_copies, c.htod_copies);
    EXPECT_EQ(c2.memsets, c.memsets);

    size_t free_mem = 0, total = 0;
    CU_ASSERT(cuMemGetInfo_v2(&free_mem, &total));
    EXPECT_EQ(total - free_mem, c2.live_bytes);

    CU_ASSERT(cuMemFree_v2(a));
    CU_ASSERT(cuMemFreeAsync(b, nullptr));
    CU_ASSERT(cuMemFree_v2(0));
    emu_get_counters(&c);
    EXPECT_EQ(c.live_allocations, live0);
    EXPECT_EQ(c.live_bytes, bytes0);
    EXPECT_EQ(cuMemFree_v2(a), CUDA_ERROR_INVALID_VALUE) << "double free";

    // Reset clears the event counters but never the live gauges.
    CU_ASSERT(cuMemAllocAsync(&a, 4096, nullptr));
    emu_reset_counters();
    emu_get_counters(&c);
    EXPECT_EQ(c.live_allocations, live0 + 1);
    EXPECT_EQ(c.htod_copies + c.dtoh_copies + c.dtod_copies + c.memsets, 0u);
    CU_ASSERT(cuMemFree_v2(a));

    void* pinned = nullptr;
    CU_ASSERT(cuMemAllocHost_v2(&pinned, 100));
    CU_ASSERT(cuMemFreeHost(pinned));
}

TEST_F(DriverTest, StreamsAndEventsWithRealElapsedTime) {
    CUstream s = nullptr;
    CU_ASSERT(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CUevent start = nullptr, stop = nullptr, untimed = nullptr;
    CU_ASSERT(cuEventCreate(&start, CU_EVENT_DEFAULT));
    CU_ASSERT(cuEventCreate(&stop, CU_EVENT_DEFAULT));
    CU_ASSERT(cuEventCreate(&untimed, CU_EVENT_DISABLE_TIMING));
    float ms = -1;
    EXPECT_EQ(cuEventElapsedTime(&ms, start, stop), CUDA_ERROR_INVALID_HANDLE) << "not recorded yet";

    CUfunction spin = fn("spin");
    DeviceBuffer<float> out(64 * 64);
    CU_ASSERT(cuEventRecord(start, s));
    void* args[] = {nullptr, nullptr};
    CUdeviceptr p = out.ptr();
    int iters = 2000;
    args[0] = &p;
    args[1] = &iters;
    CU_ASSERT(cuLaunchKernel(spin, 64, 1, 1, 64, 1, 1, 0, s, args, nullptr));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CU_ASSERT(cuEventRecord(stop, s));
    CU_ASSERT(cuStreamWaitEvent(nullptr, stop, 0));
    CU_ASSERT(cuEventSynchronize(stop));
    CU_ASSERT(cuEventQuery(stop));
    CU_ASSERT(cuStreamSynchronize(s));
    CU_ASSERT(cuStreamQuery(s));
    CU_ASSERT(cuEventElapsedTime(&ms, start, stop));
    EXPECT_GE(ms, 20.0f);
    EXPECT_LT(ms, 60000.0f);
    CU_ASSERT(cuEventRecord(untimed, s));
    EXPECT_EQ(cuEventElapsedTime(&ms, start, untimed), CUDA_ERROR_INVALID_HANDLE);

    CU_ASSERT(cuStreamDestroy_v2(s));
    EXPECT_EQ(cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, s, args, nullptr), CUDA_ERROR_INVALID_HANDLE)
        << "a destroyed stream";
    EXPECT_EQ(cuStreamSynchronize(s), CUDA_ERROR_INVALID_HANDLE);
    CU_ASSERT(cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, CU_STREAM_LEGACY, args, nullptr));
    CU_ASSERT(cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, CU_STREAM_PER_THREAD, args, nullptr));
    for (CUevent e : {start, stop, untimed}) CU_ASSERT(cuEventDestroy_v2(e));
    EXPECT_EQ(cuEventDestroy_v2(start), CUDA_ERROR_INVALID_HANDLE);
}

TEST_F(DriverTest, ModulesResolveTheirOwnKernelsByName) {
    const std::string ptx = fake_ptx({"fill_f32", "fill_bf16", "not_emulated_kernel"});
    CUmodule m = nullptr;
    CU_ASSERT(cuModuleLoadData(&m, ptx.c_str()));
    CUfunction f = nullptr;
    CU_ASSERT(cuModuleGetFunction(&f, m, "fill_f32"));
    CUfunction again = nullptr;
    CU_ASSERT(cuModuleGetFunction(&again, m, "fill_f32"));
    EXPECT_EQ(f, again);
    // A kernel of the emulator that is not in this module's image: the GPU would not find it either.
    EXPECT_EQ(cuModuleGetFunction(&f, m, "fill_f16"), CUDA_ERROR_NOT_FOUND);
    EXPECT_THAT(std::string(emu_last_error()), AllOf(HasSubstr("fill_f16"), HasSubstr("not a kernel of this module")));
    // In the image but never compiled into the emulator.
    EXPECT_EQ(cuModuleGetFunction(&f, m, "not_emulated_kernel"), CUDA_ERROR_NOT_FOUND);
    EXPECT_THAT(std::string(emu_last_error()), HasSubstr("no emulated kernel named 'not_emulated_kernel'"));
    // Any name from a fatbinary, but only registered ones.
    EXPECT_EQ(cuModuleGetFunction(&f, module_, "no_such_kernel"), CUDA_ERROR_NOT_FOUND);
    CU_ASSERT(cuModuleUnload(m));
    EXPECT_EQ(cuModuleGetFunction(&f, m, "fill_f32"), CUDA_ERROR_INVALID_HANDLE);

    // JIT log buffers of cuModuleLoadDataEx.
    char info[256] = {}, err[256] = {};
    CUjit_option opts[] = {CU_JIT_INFO_LOG_BUFFER, CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES, CU_JIT_ERROR_LOG_BUFFER,
                           CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void* vals[] = {info, reinterpret_cast<void*>(sizeof(info)), err, reinterpret_cast<void*>(sizeof(err))};
    EXPECT_EQ(cuModuleLoadDataEx(&m, "not an image", 4, opts, vals), CUDA_ERROR_INVALID_IMAGE);
    EXPECT_THAT(std::string(err), HasSubstr("unrecognised module image"));
    CU_ASSERT(cuModuleLoadDataEx(&m, ptx.c_str(), 4, opts, vals));
    EXPECT_STREQ(err, "");
    CU_ASSERT(cuModuleUnload(m));
}

TEST_F(DriverTest, RejectsImagesAnH100Would) {
    CUmodule m = nullptr;
    EXPECT_EQ(cuModuleLoadData(&m, "hello"), CUDA_ERROR_INVALID_IMAGE);
    EXPECT_EQ(cuModuleLoadData(&m, fake_ptx({"fill_f32"}, 100).c_str()), CUDA_ERROR_INVALID_PTX);
    // A host ELF file is not a CUBIN.
    Elf64_Ehdr host{};
    memcpy(host.e_ident, ELFMAG, SELFMAG);
    host.e_ident[EI_CLASS] = ELFCLASS64;
    host.e_machine = EM_X86_64;
    EXPECT_EQ(cuModuleLoadData(&m, &host), CUDA_ERROR_INVALID_IMAGE);
}

// A minimal CUBIN: ELF64, e_machine EM_CUDA (190), NVRTC's e_flags layout, a symbol table with the
// given global functions.
std::vector<unsigned char> fake_cubin(unsigned sm, const std::vector<std::string>& functions) {
    std::string strtab(1, '\0'), shstrtab(1, '\0');
    std::vector<Elf64_Sym> syms(1); // null symbol
    for (const auto& f : functions) {
        Elf64_Sym s{};
        s.st_name = static_cast<Elf64_Word>(strtab.size());
        s.st_info = ELF64_ST_INFO(STB_GLOBAL, STT_FUNC);
        syms.push_back(s);
        strtab += f + '\0';
    }
    const auto name = [&](const char* n) {
        const auto off = static_cast<Elf64_Word>(shstrtab.size());
        shstrtab += std::string(n) + '\0';
        return off;
    };
    std::vector<Elf64_Shdr> sh(4);
    sh[1].sh_name = name(".shstrtab");
    sh[2].sh_name = name(".strtab");
    sh[3].sh_name = name(".symtab");
    std::vector<unsigned char> img(sizeof(Elf64_Ehdr));
    auto append = [&](const void* p, size_t n) {
        const size_t off = img.size();
        img.insert(img.end(), static_cast<const unsigned char*>(p), static_cast<const unsigned char*>(p) + n);
        return off;
    };
    sh[1].sh_type = SHT_STRTAB;
    sh[1].sh_size = shstrtab.size();
    sh[1].sh_offset = append(shstrtab.data(), shstrtab.size());
    sh[2].sh_type = SHT_STRTAB;
    sh[2].sh_size = strtab.size();
    sh[2].sh_offset = append(strtab.data(), strtab.size());
    while (img.size() % 8) img.push_back(0);
    sh[3].sh_type = SHT_SYMTAB;
    sh[3].sh_link = 2;
    sh[3].sh_entsize = sizeof(Elf64_Sym);
    sh[3].sh_size = syms.size() * sizeof(Elf64_Sym);
    sh[3].sh_offset = append(syms.data(), sh[3].sh_size);
    Elf64_Ehdr eh{};
    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = 190;
    eh.e_version = EV_CURRENT;
    eh.e_flags = (sm << 16) | 0x0500u | sm; // as NVRTC 11.8 writes it (sm_90: 0x5a055a)
    eh.e_ehsize = sizeof(Elf64_Ehdr);
    eh.e_shentsize = sizeof(Elf64_Shdr);
    eh.e_shnum = 4;
    eh.e_shstrndx = 1;
    eh.e_shoff = append(sh.data(), sh.size() * sizeof(Elf64_Shdr));
    memcpy(img.data(), &eh, sizeof(eh));
    return img;
}

TEST_F(DriverTest, CubinImagesResolveTheirSymbolsAndMustMatchTheArchitecture) {
    const auto sm90 = fake_cubin(90, {"fill_bf16", "no_params"});
    CUmodule m = nullptr;
    CU_ASSERT(cuModuleLoadData(&m, sm90.data()));
    CUfunction f = nullptr;
    CU_ASSERT(cuModuleGetFunction(&f, m, "fill_bf16"));
    CU_ASSERT(cuModuleGetFunction(&f, m, "no_params"));
    CU_ASSERT(launch(f, {1}, {1}, 0));
    EXPECT_EQ(cuModuleGetFunction(&f, m, "fill_f32"), CUDA_ERROR_NOT_FOUND);
    CU_ASSERT(cuModuleUnload(m));
    const auto sm80 = fake_cubin(80, {"fill_bf16"});
    EXPECT_EQ(cuModuleLoadData(&m, sm80.data()), CUDA_ERROR_NO_BINARY_FOR_GPU);
    EXPECT_THAT(std::string(emu_last_error()), HasSubstr("sm_80"));
}

struct Pair {
    int a;
    float b;
};
struct alignas(16) Float4 {
    float x, y, z, w;
};

TEST_F(DriverTest, KernelSignaturesAndParameterUnpacking) {
    EXPECT_STREQ(emu_kernel_signature("all_param_kinds"), "piulLfdhCbSS");
    EXPECT_STREQ(emu_kernel_signature("fill_bf16"), "pfi");
    EXPECT_STREQ(emu_kernel_signature("no_params"), "");
    EXPECT_EQ(emu_kernel_signature("no_such_kernel"), nullptr);
    EXPECT_THAT(std::string(emu_kernel_list()),
                AllOf(HasSubstr("fill_bf16 pfi native/tests/kernels/misc_kernels.cu\n"),
                      HasSubstr("reduce_static_smem ppi native/tests/kernels/reduce_kernels.cu\n")));

    CUfunction f = fn("all_param_kinds");
    DeviceBuffer<double> out(15);
    const std::vector<double> want = {-7, 4000000000.0, -(1ll << 40), 1ull << 50, 1.5, 2.25, -300, 200, 1, 42, 0.125,
                                      1, 2, 3, 4};
    // kernelParams, as the C# launchers pass them.
    CU_ASSERT(launch(f, {1}, {1}, 0, out.ptr(), -7, 4000000000u, -(1ll << 40), 1ull << 50, 1.5f, 2.25, (short)-300,
                     (unsigned char)200, true, Pair{42, 0.125f}, Float4{1, 2, 3, 4}));
    EXPECT_EQ(out.download(), want);

    // One packed buffer through CU_LAUNCH_PARAM_BUFFER_POINTER, each parameter at its natural alignment.
    struct Packed {
        CUdeviceptr out;
        int i;
        unsigned u;
        long long l;
        unsigned long long ul;
        float f;
        double d;
        short h;
        unsigned char c;
        bool b;
        Pair s;
        Float4 v;
    } packed{0, -7, 4000000000u, -(1ll << 40), 1ull << 50, 1.5f, 2.25, -300, 200, true, {42, 0.125f}, {1, 2, 3, 4}};
    out.fill_bytes(0);
    packed.out = out.ptr();
    size_t size = sizeof(packed);
    void* extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, &packed, CU_LAUNCH_PARAM_BUFFER_SIZE, &size, CU_LAUNCH_PARAM_END};
    CU_ASSERT(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, nullptr, nullptr, extra));
    EXPECT_EQ(out.download(), want);
    size = 40;
    EXPECT_EQ(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, nullptr, nullptr, extra), CUDA_ERROR_INVALID_VALUE);
    EXPECT_THAT(std::string(emu_last_error()), AllOf(HasSubstr("40 bytes"), HasSubstr("'all_param_kinds'")));
    // A buffer larger than the kernel's parameter block (a host struct with an extra field) is rejected as well.
    size = sizeof(packed) + 8;
    EXPECT_EQ(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, nullptr, nullptr, extra), CUDA_ERROR_INVALID_VALUE);
    EXPECT_THAT(std::string(emu_last_error()), HasSubstr("does not match kernel 'all_param_kinds'"));
    EXPECT_EQ(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, nullptr, nullptr, nullptr), CUDA_ERROR_INVALID_VALUE)
        << "missing kernelParams";
}

TEST_F(DriverTest, LaunchCountsPerKernel) {
    emu_reset_counters();
    CUfunction f32 = fn("fill_f32"), bf = fn("fill_bf16");
    DeviceBuffer<float> out(10);
    CU_ASSERT(launch(bf, {1}, {32}, 0, out.ptr(), 2.5f, 5));
    for (int i = 0; i < 3; ++i) CU_ASSERT(launch(f32, {1}, {32}, 0, out.ptr(), 2.5f, 10));
    EXPECT_EQ(emu_launch_count("fill_f32"), 3u);
    EXPECT_EQ(emu_launch_count("fill_bf16"), 1u);
    EXPECT_EQ(emu_launch_count("fill_f16"), 0u);
    EXPECT_EQ(emu_launch_count("no_such_kernel"), 0u);
    emu_counters c{};
    emu_get_counters(&c);
    EXPECT_EQ(c.launches, 4u);
    EXPECT_THAT(out.download(), ::testing::Each(2.5f));
    emu_reset_counters();
    EXPECT_EQ(emu_launch_count("fill_f32"), 0u);
}

TEST_F(DriverTest, ControlApiValidatesItsArguments) {
    EXPECT_EQ(emu_set_schedule("sideways"), CUDA_ERROR_INVALID_VALUE);
    EXPECT_THAT(std::string(emu_last_error()), HasSubstr("sideways"));
    EXPECT_EQ(emu_set_schedule("random"), CUDA_ERROR_INVALID_VALUE);
    EXPECT_EQ(emu_set_schedule("random:x1"), CUDA_ERROR_INVALID_VALUE);
    EXPECT_EQ(emu_set_schedule(nullptr), CUDA_ERROR_INVALID_VALUE);
    EXPECT_STREQ(emu_get_schedule(), "forward") << "a rejected spec leaves the schedule alone";
    EXPECT_EQ(emu_set_schedule("random:0x10"), 0);
    EXPECT_STREQ(emu_get_schedule(), "random:16");
    EXPECT_EQ(emu_set_schedule("reverse"), 0);
    EXPECT_STREQ(emu_get_schedule(), "reverse");
    EXPECT_EQ(emu_set_threads(1), 0);
    EXPECT_EQ(emu_get_threads(), 1u);
    EXPECT_EQ(emu_set_threads(100000), CUDA_ERROR_INVALID_VALUE);
    EXPECT_EQ(emu_get_threads(), 1u);
    EXPECT_EQ(emu_set_threads(0), 0);
    EXPECT_GE(emu_get_threads(), 1u);
}

TEST_F(DriverTest, ModuleGlobalsAreWritableDeviceMemory) {
    const std::string ptx = fake_ptx({"scale_by_constant"});
    CUmodule m = nullptr;
    CU_ASSERT(cuModuleLoadData(&m, ptx.c_str()));
    CUdeviceptr scale = 0;
    size_t bytes = 0;
    CU_ASSERT(cuModuleGetGlobal_v2(&scale, &bytes, m, "emu_test_scale"));
    EXPECT_EQ(bytes, 16u);
    const float s[4] = {1, 2, 3, 4};
    CU_ASSERT(cuMemcpyHtoD_v2(scale, s, sizeof(s)));
    EXPECT_EQ(cuMemcpyHtoD_v2(scale, s, 17), CUDA_ERROR_INVALID_VALUE);
    EXPECT_EQ(cuModuleGetGlobal_v2(&scale, &bytes, m, "no_such_global"), CUDA_ERROR_NOT_FOUND);
    CUfunction f = nullptr;
    CU_ASSERT(cuModuleGetFunction(&f, m, "scale_by_constant"));
    DeviceBuffer<float> x(std::vector<float>(10, 1.0f));
    CU_ASSERT(launch(f, {1}, {32}, 0, x.ptr(), 10));
    EXPECT_EQ(x.download(), (std::vector<float>{1, 2, 3, 4, 1, 2, 3, 4, 1, 2}));
    CU_ASSERT(cuModuleUnload(m));
}

TEST_F(DriverTest, OccupancyAndFunctionAttributes) {
    CUfunction f = fn("fill_f32");
    int blocks = 0;
    CU_ASSERT(cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, f, 256, 0));
    EXPECT_EQ(blocks, 8);
    CU_ASSERT(cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, f, 128, 100 * 1024));
    EXPECT_EQ(blocks, 2);
    int v = 0;
    CU_ASSERT(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, f));
    EXPECT_EQ(v, 1024);
    CU_ASSERT(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, f));
    EXPECT_EQ(v, 49152);
    CU_ASSERT(cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, 50));
}

} // namespace

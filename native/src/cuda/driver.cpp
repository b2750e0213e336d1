// libcuda_emu.so: the CUDA driver API surface of the emulator, exported under NVIDIA's symbol names.
//
// The emulated device is one H100 (sm_90).  "Device memory" is host memory (a CUdeviceptr is the
// host address), every operation completes before its call returns (streams and events exist for
// API fidelity; events record wall-clock time), and kernels run on the fiber scheduler of
// libemu_rt.so.  Argument checking follows the real driver where it matters for catching bugs on a
// machine without a GPU: calls before cuInit, without a current context, with dead handles, with
// launch configurations an H100 rejects, and copies outside any allocation all fail, and the reason
// is available from emu_last_error().
#include <dlfcn.h>
#include <link.h>

#include <chrono>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cuda/module_image.h"
#include "emu_cuda.h"
#include "rt/runtime.h"

#define EMU_API extern "C" __attribute__((visibility("default")))

// Opaque handle types of cuda.h, defined here.
struct CUctx_st {
    CUdevice device = 0;
    unsigned flags = 0;
    bool primary = false;
    bool alive = false;
};

struct CUmod_st;

struct CUfunc_st {
    const emu::rt::KernelInfo* kernel = nullptr;
    CUmod_st* module = nullptr;
    int max_dynamic_smem = 48 * 1024; // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    int carveout = -1;                // CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT
};

struct CUmod_st {
    CUcontext ctx = nullptr;
    emu::cuda::ModuleImage image;
    std::set<std::string> entries;
    std::map<std::string, std::unique_ptr<CUfunc_st>> functions;
};

struct CUstream_st {
    CUcontext ctx = nullptr;
    unsigned flags = 0;
    int priority = 0;
};

struct CUevent_st {
    CUcontext ctx = nullptr;
    unsigned flags = 0;
    bool recorded = false;
    std::chrono::steady_clock::time_point time;
};

namespace {

using emu::rt::format;

// ---- the emulated device ----------------------------------------------------------------------------
constexpr int kDeviceArch = 90;
constexpr const char* kDeviceName = "NVIDIA H100 80GB HBM3 (BlockDance CPU emulator)";
constexpr size_t kTotalMem = 81559ull * 1024 * 1024;   // what an H100 80GB reports
constexpr int kMaxSmemPerBlock = 48 * 1024;
constexpr int kMaxSmemPerBlockOptin = 227 * 1024;      // 232448
constexpr int kDriverVersion = 12020;

int device_attribute(int attrib, bool* known) {
    *known = true;
    switch (attrib) {
    case 1: return 1024;        // MAX_THREADS_PER_BLOCK
    case 2: return 1024;        // MAX_BLOCK_DIM_X
    case 3: return 1024;        // MAX_BLOCK_DIM_Y
    case 4: return 64;          // MAX_BLOCK_DIM_Z
    case 5: return 2147483647;  // MAX_GRID_DIM_X
    case 6: return 65535;       // MAX_GRID_DIM_Y
    case 7: return 65535;       // MAX_GRID_DIM_Z
    case 8: return kMaxSmemPerBlock;
    case 9: return 65536;       // TOTAL_CONSTANT_MEMORY
    case 10: return 32;         // WARP_SIZE
    case 11: return 2147483647; // MAX_PITCH
    case 12: return 65536;      // MAX_REGISTERS_PER_BLOCK
    case 13: return 1980000;    // CLOCK_RATE (kHz)
    case 14: return 512;        // TEXTURE_ALIGNMENT
    case 15: return 1;          // GPU_OVERLAP
    case 16: return 132;        // MULTIPROCESSOR_COUNT
    case 19: return 1;          // CAN_MAP_HOST_MEMORY
    case 30: return 512;        // SURFACE_ALIGNMENT
    case 31: return 1;          // CONCURRENT_KERNELS
    case 32: return 1;          // ECC_ENABLED
    case 36: return 2619000;    // MEMORY_CLOCK_RATE (kHz)
    case 37: return 5120;       // GLOBAL_MEMORY_BUS_WIDTH
    case 38: return 50 * 1024 * 1024; // L2_CACHE_SIZE
    case 39: return 2048;       // MAX_THREADS_PER_MULTIPROCESSOR
    case 40: return 3;          // ASYNC_ENGINE_COUNT
    case 41: return 1;          // UNIFIED_ADDRESSING
    case 51: return 32;         // TEXTURE_PITCH_ALIGNMENT
    case 75: return kDeviceArch / 10; // COMPUTE_CAPABILITY_MAJOR
    case 76: return kDeviceArch % 10; // COMPUTE_CAPABILITY_MINOR
    case 78: return 1;          // STREAM_PRIORITIES_SUPPORTED
    case 79: return 1;          // GLOBAL_L1_CACHE_SUPPORTED
    case 80: return 1;          // LOCAL_L1_CACHE_SUPPORTED
    case 81: return 228 * 1024; // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
    case 82: return 65536;      // MAX_REGISTERS_PER_MULTIPROCESSOR
    case 83: return 1;          // MANAGED_MEMORY
    case 87: return 2;          // SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO
    case 89: return 1;          // CONCURRENT_MANAGED_ACCESS
    case 90: return 1;          // COMPUTE_PREEMPTION_SUPPORTED
    case 95: return 1;          // COOPERATIVE_LAUNCH
    case 97: return kMaxSmemPerBlockOptin;
    case 99: return 1;          // HOST_REGISTER_SUPPORTED
    case 102: return 1;         // VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED
    case 106: return 32;        // MAX_BLOCKS_PER_MULTIPROCESSOR
    case 111: return 1024;      // RESERVED_SHARED_MEMORY_PER_BLOCK
    case 115: return 1;         // MEMORY_POOLS_SUPPORTED
    case 120: return 1;         // CLUSTER_LAUNCH
    case 126: return 4;         // MEM_SYNC_DOMAIN_COUNT
    case 127: return 1;         // TENSOR_MAP_ACCESS_SUPPORTED
    case 131: return -1;        // NUMA_ID
    case 134: return -1;        // HOST_NUMA_ID
    default: break;
    }
    *known = attrib >= 1 && attrib <= 136; // a valid attribute this device reports as 0
    return 0;
}

// ---- global state -----------------------------------------------------------------------------------
struct Allocation {
    size_t bytes = 0;
    CUcontext ctx = nullptr; // nullptr for module globals (not freeable, not counted)
};

struct Driver {
    std::mutex mu;
    bool initialized = false;
    CUctx_st primary;
    int primary_refs = 0;
    std::set<CUctx_st*> contexts; // every context ever created (never freed, so stale handles stay detectable)
    std::map<uintptr_t, Allocation> allocations;
    std::set<CUmod_st*> modules;
    std::set<CUfunc_st*> functions;
    std::set<CUstream_st*> streams;
    std::set<CUevent_st*> events;
};

Driver& driver() {
    static Driver* d = [] {
        auto* dr = new Driver;
        dr->primary.primary = true;
        dr->contexts.insert(&dr->primary);
        return dr;
    }();
    return *d;
}

// The context stack of the calling thread (cuCtxSetCurrent replaces the top).
thread_local std::vector<CUcontext> tl_ctx_stack;

CUcontext current_context() { return tl_ctx_stack.empty() ? nullptr : tl_ctx_stack.back(); }

CUresult fail(CUresult code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
CUresult fail(CUresult code, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char buf[1024];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    emu::rt::set_last_error(buf);
    return code;
}

#define REQUIRE_INIT(fn)                                                                           \
    do {                                                                                           \
        if (!initialized()) return fail(CUDA_ERROR_NOT_INITIALIZED, "%s: cuInit has not been called", fn); \
    } while (0)

#define REQUIRE_CONTEXT(fn)                                                                        \
    do {                                                                                           \
        REQUIRE_INIT(fn);                                                                          \
        if (!context_alive(current_context()))                                                     \
            return fail(CUDA_ERROR_INVALID_CONTEXT,                                                \
                        "%s: no live CUDA context is current on this thread (cuCtxSetCurrent)", fn); \
    } while (0)

bool initialized() {
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    return d.initialized;
}

bool context_alive(CUcontext ctx) {
    if (ctx == nullptr) return false;
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    return d.contexts.count(ctx) != 0 && ctx->alive;
}

// Streams: NULL, CU_STREAM_LEGACY and CU_STREAM_PER_THREAD are always valid.
bool stream_valid(CUstream s) {
    if (s == nullptr || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD) return true;
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    return d.streams.count(s) != 0 && s->ctx->alive;
}

#define REQUIRE_STREAM(fn, s)                                                                      \
    do {                                                                                           \
        if (!stream_valid(s)) return fail(CUDA_ERROR_INVALID_HANDLE, "%s: invalid stream %p", fn, (void*)(s)); \
    } while (0)

// Frees every allocation of a context that is being destroyed (as the real driver does).
void free_context_allocations(Driver& d, CUcontext ctx) {
    auto& c = emu::rt::counters();
    for (auto it = d.allocations.begin(); it != d.allocations.end();) {
        if (it->second.ctx == ctx) {
            c.live_allocations.fetch_sub(1);
            c.live_bytes.fetch_sub(it->second.bytes);
            free(reinterpret_cast<void*>(it->first));
            it = d.allocations.erase(it);
        } else {
            ++it;
        }
    }
}

// True if [p, p + bytes) lies inside one allocation (or module global).
bool in_device_memory(CUdeviceptr p, size_t bytes) {
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    auto it = d.allocations.upper_bound(static_cast<uintptr_t>(p));
    if (it == d.allocations.begin()) return false;
    --it;
    const uintptr_t base = it->first;
    return p >= base && p - base <= it->second.bytes && bytes <= it->second.bytes - (p - base);
}

CUresult check_device_range(const char* fn, const char* what, CUdeviceptr p, size_t bytes) {
    if (!in_device_memory(p, bytes))
        return fail(CUDA_ERROR_INVALID_VALUE, "%s: %s range [0x%llx, +%zu) is not inside a device allocation", fn, what,
                    p, bytes);
    return CUDA_SUCCESS;
}

// ---- copies and memsets -----------------------------------------------------------------------------
CUresult copy_htod(const char* fn, CUdeviceptr dst, const void* src, size_t bytes, CUstream s) {
    REQUIRE_CONTEXT(fn);
    REQUIRE_STREAM(fn, s);
    if (bytes != 0 && src == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "%s: source is NULL", fn);
    if (CUresult r = check_device_range(fn, "destination", dst, bytes)) return r;
    if (bytes != 0) memcpy(reinterpret_cast<void*>(dst), src, bytes);
    auto& c = emu::rt::counters();
    c.htod_copies.fetch_add(1);
    c.htod_bytes.fetch_add(bytes);
    return CUDA_SUCCESS;
}

CUresult copy_dtoh(const char* fn, void* dst, CUdeviceptr src, size_t bytes, CUstream s) {
    REQUIRE_CONTEXT(fn);
    REQUIRE_STREAM(fn, s);
    if (bytes != 0 && dst == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "%s: destination is NULL", fn);
    if (CUresult r = check_device_range(fn, "source", src, bytes)) return r;
    if (bytes != 0) memcpy(dst, reinterpret_cast<const void*>(src), bytes);
    auto& c = emu::rt::counters();
    c.dtoh_copies.fetch_add(1);
    c.dtoh_bytes.fetch_add(bytes);
    return CUDA_SUCCESS;
}

CUresult copy_dtod(const char* fn, CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream s) {
    REQUIRE_CONTEXT(fn);
    REQUIRE_STREAM(fn, s);
    if (CUresult r = check_device_range(fn, "source", src, bytes)) return r;
    if (CUresult r = check_device_range(fn, "destination", dst, bytes)) return r;
    if (bytes != 0) memmove(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), bytes);
    auto& c = emu::rt::counters();
    c.dtod_copies.fetch_add(1);
    c.dtod_bytes.fetch_add(bytes);
    return CUDA_SUCCESS;
}

template <class T> CUresult memset_n(const char* fn, CUdeviceptr dst, T value, size_t count, CUstream s) {
    REQUIRE_CONTEXT(fn);
    REQUIRE_STREAM(fn, s);
    if (dst % sizeof(T) != 0)
        return fail(CUDA_ERROR_INVALID_VALUE, "%s: destination 0x%llx is not %zu-byte aligned", fn, dst, sizeof(T));
    if (count > SIZE_MAX / sizeof(T)) return fail(CUDA_ERROR_INVALID_VALUE, "%s: count overflows", fn);
    if (CUresult r = check_device_range(fn, "destination", dst, count * sizeof(T))) return r;
    T* p = reinterpret_cast<T*>(dst);
    for (size_t i = 0; i < count; ++i) p[i] = value;
    emu::rt::counters().memsets.fetch_add(1);
    return CUDA_SUCCESS;
}

// ---- allocation ---------------------------------------------------------------------------------------
CUresult mem_alloc(const char* fn, CUdeviceptr* dptr, size_t bytes) {
    REQUIRE_CONTEXT(fn);
    if (dptr == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "%s: dptr is NULL", fn);
    if (bytes == 0) return fail(CUDA_ERROR_INVALID_VALUE, "%s: size is 0", fn);
    if (bytes > kTotalMem) return fail(CUDA_ERROR_OUT_OF_MEMORY, "%s: %zu bytes exceed the device memory", fn, bytes);
    // 256-byte alignment, as cudaMalloc guarantees.  Fresh memory is poisoned with 0xff (NaN in
    // every float format, -1 in every integer) so that reading it before writing shows up.
    const size_t rounded = (bytes + 255) & ~size_t(255);
    void* p = aligned_alloc(256, rounded);
    if (p == nullptr) return fail(CUDA_ERROR_OUT_OF_MEMORY, "%s: host allocation of %zu bytes failed", fn, bytes);
    memset(p, 0xff, rounded);
    Driver& d = driver();
    {
        std::lock_guard<std::mutex> lock(d.mu);
        d.allocations[reinterpret_cast<uintptr_t>(p)] = Allocation{bytes, current_context()};
    }
    auto& c = emu::rt::counters();
    c.live_allocations.fetch_add(1);
    c.live_bytes.fetch_add(bytes);
    *dptr = reinterpret_cast<CUdeviceptr>(p);
    return CUDA_SUCCESS;
}

CUresult mem_free(const char* fn, CUdeviceptr dptr) {
    REQUIRE_CONTEXT(fn);
    if (dptr == 0) return CUDA_SUCCESS;
    Driver& d = driver();
    size_t bytes = 0;
    {
        std::lock_guard<std::mutex> lock(d.mu);
        auto it = d.allocations.find(static_cast<uintptr_t>(dptr));
        if (it == d.allocations.end() || it->second.ctx == nullptr)
            return fail(CUDA_ERROR_INVALID_VALUE, "%s: 0x%llx is not the start of a device allocation", fn, dptr);
        bytes = it->second.bytes;
        d.allocations.erase(it);
    }
    free(reinterpret_cast<void*>(dptr));
    auto& c = emu::rt::counters();
    c.live_allocations.fetch_sub(1);
    c.live_bytes.fetch_sub(bytes);
    return CUDA_SUCCESS;
}

// ---- modules ----------------------------------------------------------------------------------------
std::string join(const std::vector<std::string>& v, size_t max_items = 12) {
    std::string s;
    for (size_t i = 0; i < v.size() && i < max_items; ++i) s += (i ? ", " : "") + v[i];
    if (v.size() > max_items) s += format(", ... (%zu in all)", v.size());
    return s.empty() ? "none" : s;
}

std::vector<std::string> registered_names() {
    std::vector<std::string> names;
    for (const auto* k : emu::rt::all_kernels()) names.push_back(k->name);
    return names;
}

void write_jit_log(unsigned n, const CUjit_option* options, void** values, int buffer_opt, int size_opt,
                   const std::string& text) {
    char* buffer = nullptr;
    size_t size = 0;
    for (unsigned i = 0; i < n; ++i) {
        if (options[i] == buffer_opt) buffer = static_cast<char*>(values[i]);
        if (options[i] == size_opt) size = static_cast<size_t>(reinterpret_cast<uintptr_t>(values[i]));
    }
    if (buffer != nullptr && size != 0) {
        const size_t len = std::min(text.size(), size - 1);
        memcpy(buffer, text.data(), len);
        buffer[len] = '\0';
    }
}

CUresult load_module(const char* fn, CUmodule* module, const void* image, unsigned num_options, CUjit_option* options,
                     void** values) {
    REQUIRE_CONTEXT(fn);
    if (module == nullptr || image == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "%s: NULL argument", fn);
    if (num_options != 0 && (options == nullptr || values == nullptr))
        return fail(CUDA_ERROR_INVALID_VALUE, "%s: JIT options without values", fn);
    auto m = std::make_unique<CUmod_st>();
    std::string error;
    const int rc = emu::cuda::parse_module_image(image, kDeviceArch, &m->image, &error);
    write_jit_log(num_options, options, values, CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                  rc != CUDA_SUCCESS ? error : std::string());
    write_jit_log(num_options, options, values, CU_JIT_INFO_LOG_BUFFER, CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES,
                  rc == CUDA_SUCCESS ? "emulated module: kernels resolve from the emulator's kernel library" : "");
    if (rc != CUDA_SUCCESS) return fail(rc, "%s: %s", fn, error.c_str());
    m->entries.insert(m->image.entries.begin(), m->image.entries.end());
    m->ctx = current_context();
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    *module = m.get();
    d.modules.insert(m.release());
    return CUDA_SUCCESS;
}

bool module_valid(CUmodule m) {
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    return d.modules.count(m) != 0 && m->ctx->alive;
}

bool function_valid(CUfunction f) {
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    return d.functions.count(f) != 0 && f->module->ctx->alive;
}

// The shared objects that registered kernels (for cuModuleGetGlobal_v2 symbol lookups).
std::vector<void*> kernel_library_handles() {
    std::set<std::string> files;
    for (const auto* k : emu::rt::all_kernels()) {
        Dl_info info;
        if (dladdr(reinterpret_cast<void*>(k->thunk), &info) != 0 && info.dli_fname != nullptr)
            files.insert(info.dli_fname);
    }
    std::vector<void*> handles;
    for (const auto& f : files)
        if (void* h = dlopen(f.c_str(), RTLD_LAZY | RTLD_NOLOAD)) handles.push_back(h);
    if (void* self = dlopen(nullptr, RTLD_LAZY)) handles.push_back(self); // kernels linked into the executable
    return handles; // the caller dlclose()s them; the libraries stay loaded (linked with -z nodelete)
}

// ---- launches -----------------------------------------------------------------------------------------
// Builds kernelParams from a CU_LAUNCH_PARAM_BUFFER_POINTER buffer: parameters at their natural
// alignment, in order, as the real driver lays them out.
CUresult params_from_extra(const emu::rt::KernelInfo& k, void** extra, std::vector<void*>* params) {
    char* buffer = nullptr;
    size_t* size = nullptr;
    for (size_t i = 0; extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
        if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER) buffer = static_cast<char*>(extra[i + 1]);
        else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE) size = static_cast<size_t*>(extra[i + 1]);
        else return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel: unknown key %p in extra", extra[i]);
    }
    if (buffer == nullptr || size == nullptr)
        return fail(CUDA_ERROR_INVALID_VALUE,
                    "cuLaunchKernel: extra needs CU_LAUNCH_PARAM_BUFFER_POINTER and CU_LAUNCH_PARAM_BUFFER_SIZE");
    size_t offset = 0, max_align = 1;
    for (size_t i = 0; i < k.param_sizes.size(); ++i) {
        const size_t a = k.param_aligns[i];
        offset = (offset + a - 1) / a * a;
        params->push_back(buffer + offset);
        offset += k.param_sizes[i];
        max_align = a > max_align ? a : max_align;
    }
    // The buffer is the parameters laid out as a C struct: exactly their extent, or that rounded up to the largest
    // alignment (sizeof of the struct). Anything else is a host struct that does not match the kernel.
    const size_t padded = (offset + max_align - 1) / max_align * max_align;
    if (*size != offset && *size != padded)
        return fail(CUDA_ERROR_INVALID_VALUE,
                    "cuLaunchKernel: parameter buffer of %zu bytes does not match kernel '%s' (%s), whose parameters "
                    "take %zu bytes (%zu as a struct)",
                    *size, k.name.c_str(), k.signature.c_str(), offset, padded);
    return CUDA_SUCCESS;
}

} // namespace

// =====================================================================================================
// Exported driver API
// =====================================================================================================

EMU_API CUresult cuInit(unsigned int flags) {
    if (flags != 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuInit: flags must be 0");
    const std::string env = emu::rt::env_error();
    if (!env.empty()) return fail(CUDA_ERROR_INVALID_VALUE, "cuInit: %s", env.c_str());
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    d.initialized = true;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuDriverGetVersion(int* version) {
    if (version == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuDriverGetVersion: NULL");
    *version = kDriverVersion;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuDeviceGetCount(int* count) {
    REQUIRE_INIT("cuDeviceGetCount");
    if (count == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuDeviceGetCount: NULL");
    *count = 1;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuDeviceGet(CUdevice* device, int ordinal) {
    REQUIRE_INIT("cuDeviceGet");
    if (device == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuDeviceGet: NULL");
    if (ordinal != 0) return fail(CUDA_ERROR_INVALID_DEVICE, "cuDeviceGet: ordinal %d (the emulator has device 0)", ordinal);
    *device = 0;
    return CUDA_SUCCESS;
}

#define REQUIRE_DEVICE(fn, dev)                                                                    \
    do {                                                                                           \
        REQUIRE_INIT(fn);                                                                          \
        if ((dev) != 0) return fail(CUDA_ERROR_INVALID_DEVICE, "%s: invalid device %d", fn, (int)(dev)); \
    } while (0)

EMU_API CUresult cuDeviceGetName(char* name, int len, CUdevice dev) {
    REQUIRE_DEVICE("cuDeviceGetName", dev);
    if (name == nullptr || len <= 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuDeviceGetName: bad buffer");
    snprintf(name, static_cast<size_t>(len), "%s", kDeviceName);
    return CUDA_SUCCESS;
}

EMU_API CUresult cuDeviceGetAttribute(int* value, CUdevice_attribute attrib, CUdevice dev) {
    REQUIRE_DEVICE("cuDeviceGetAttribute", dev);
    if (value == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuDeviceGetAttribute: NULL");
    bool known = false;
    const int v = device_attribute(attrib, &known);
    if (!known) return fail(CUDA_ERROR_INVALID_VALUE, "cuDeviceGetAttribute: unknown attribute %d", attrib);
    *value = v;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice dev) {
    REQUIRE_DEVICE("cuDeviceTotalMem_v2", dev);
    if (bytes == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuDeviceTotalMem_v2: NULL");
    *bytes = kTotalMem;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuDeviceComputeCapability(int* major, int* minor, CUdevice dev) {
    REQUIRE_DEVICE("cuDeviceComputeCapability", dev);
    if (major == nullptr || minor == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuDeviceComputeCapability: NULL");
    *major = kDeviceArch / 10;
    *minor = kDeviceArch % 10;
    return CUDA_SUCCESS;
}

// ---- contexts -----------------------------------------------------------------------------------------
EMU_API CUresult cuDevicePrimaryCtxRetain(CUcontext* ctx, CUdevice dev) {
    REQUIRE_DEVICE("cuDevicePrimaryCtxRetain", dev);
    if (ctx == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuDevicePrimaryCtxRetain: NULL");
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    ++d.primary_refs;
    d.primary.alive = true;
    *ctx = &d.primary;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
    REQUIRE_DEVICE("cuDevicePrimaryCtxRelease_v2", dev);
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    if (d.primary_refs == 0) return fail(CUDA_ERROR_INVALID_CONTEXT, "cuDevicePrimaryCtxRelease_v2: not retained");
    if (--d.primary_refs == 0) {
        // The last release destroys the primary context and everything allocated in it.
        free_context_allocations(d, &d.primary);
        d.primary.alive = false;
    }
    return CUDA_SUCCESS;
}

EMU_API CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev) {
    REQUIRE_DEVICE("cuDevicePrimaryCtxReset_v2", dev);
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    free_context_allocations(d, &d.primary);
    return CUDA_SUCCESS;
}

EMU_API CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int* flags, int* active) {
    REQUIRE_DEVICE("cuDevicePrimaryCtxGetState", dev);
    if (flags == nullptr || active == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuDevicePrimaryCtxGetState: NULL");
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    *flags = d.primary.flags;
    *active = d.primary.alive ? 1 : 0;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice dev, unsigned int flags) {
    REQUIRE_DEVICE("cuDevicePrimaryCtxSetFlags_v2", dev);
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    d.primary.flags = flags;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuCtxCreate_v2(CUcontext* ctx, unsigned int flags, CUdevice dev) {
    REQUIRE_DEVICE("cuCtxCreate_v2", dev);
    if (ctx == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuCtxCreate_v2: NULL");
    auto* c = new CUctx_st;
    c->flags = flags;
    c->alive = true;
    {
        Driver& d = driver();
        std::lock_guard<std::mutex> lock(d.mu);
        d.contexts.insert(c);
    }
    tl_ctx_stack.push_back(c);
    *ctx = c;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuCtxDestroy_v2(CUcontext ctx) {
    REQUIRE_INIT("cuCtxDestroy_v2");
    Driver& d = driver();
    {
        std::lock_guard<std::mutex> lock(d.mu);
        if (ctx == nullptr || d.contexts.count(ctx) == 0 || !ctx->alive || ctx->primary)
            return fail(CUDA_ERROR_INVALID_CONTEXT, "cuCtxDestroy_v2: %p is not a live non-primary context", (void*)ctx);
        free_context_allocations(d, ctx);
        ctx->alive = false;
    }
    if (current_context() == ctx) tl_ctx_stack.pop_back();
    return CUDA_SUCCESS;
}

EMU_API CUresult cuCtxSetCurrent(CUcontext ctx) {
    REQUIRE_INIT("cuCtxSetCurrent");
    if (ctx == nullptr) {
        if (!tl_ctx_stack.empty()) tl_ctx_stack.pop_back();
        return CUDA_SUCCESS;
    }
    if (!context_alive(ctx)) return fail(CUDA_ERROR_INVALID_CONTEXT, "cuCtxSetCurrent: %p is not a live context", (void*)ctx);
    if (tl_ctx_stack.empty()) tl_ctx_stack.push_back(ctx);
    else tl_ctx_stack.back() = ctx;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuCtxGetCurrent(CUcontext* ctx) {
    REQUIRE_INIT("cuCtxGetCurrent");
    if (ctx == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuCtxGetCurrent: NULL");
    *ctx = current_context();
    return CUDA_SUCCESS;
}

EMU_API CUresult cuCtxPushCurrent_v2(CUcontext ctx) {
    REQUIRE_INIT("cuCtxPushCurrent_v2");
    if (!context_alive(ctx)) return fail(CUDA_ERROR_INVALID_CONTEXT, "cuCtxPushCurrent_v2: %p is not a live context", (void*)ctx);
    tl_ctx_stack.push_back(ctx);
    return CUDA_SUCCESS;
}

EMU_API CUresult cuCtxPopCurrent_v2(CUcontext* ctx) {
    REQUIRE_INIT("cuCtxPopCurrent_v2");
    if (tl_ctx_stack.empty()) return fail(CUDA_ERROR_INVALID_CONTEXT, "cuCtxPopCurrent_v2: no current context");
    if (ctx != nullptr) *ctx = tl_ctx_stack.back();
    tl_ctx_stack.pop_back();
    return CUDA_SUCCESS;
}

EMU_API CUresult cuCtxGetDevice(CUdevice* dev) {
    REQUIRE_CONTEXT("cuCtxGetDevice");
    if (dev == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuCtxGetDevice: NULL");
    *dev = 0;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuCtxSynchronize(void) {
    REQUIRE_CONTEXT("cuCtxSynchronize");
    return CUDA_SUCCESS; // all work completed when it was issued
}

// ---- modules and functions ----------------------------------------------------------------------------
EMU_API CUresult cuModuleLoadData(CUmodule* module, const void* image) {
    return load_module("cuModuleLoadData", module, image, 0, nullptr, nullptr);
}

EMU_API CUresult cuModuleLoadDataEx(CUmodule* module, const void* image, unsigned int num_options,
                                    CUjit_option* options, void** option_values) {
    return load_module("cuModuleLoadDataEx", module, image, num_options, options, option_values);
}

EMU_API CUresult cuModuleUnload(CUmodule module) {
    REQUIRE_INIT("cuModuleUnload");
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    if (d.modules.erase(module) == 0) return fail(CUDA_ERROR_INVALID_HANDLE, "cuModuleUnload: invalid module %p", (void*)module);
    for (auto& [name, f] : module->functions) d.functions.erase(f.get());
    delete module;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuModuleGetFunction(CUfunction* func, CUmodule module, const char* name) {
    REQUIRE_INIT("cuModuleGetFunction");
    if (func == nullptr || name == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuModuleGetFunction: NULL argument");
    if (!module_valid(module)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuModuleGetFunction: invalid module %p", (void*)module);
    if (module->image.names_known && module->entries.count(name) == 0)
        return fail(CUDA_ERROR_NOT_FOUND, "cuModuleGetFunction: '%s' is not a kernel of this module (its image defines: %s)",
                    name, join(module->image.entries).c_str());
    const emu::rt::KernelInfo* k = emu::rt::find_kernel(name);
    if (k == nullptr)
        return fail(CUDA_ERROR_NOT_FOUND,
                    "cuModuleGetFunction: no emulated kernel named '%s' (is libkernels_emu.so built from the current "
                    "src/Kernels/cuda?); registered: %s",
                    name, join(registered_names()).c_str());
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    auto& slot = module->functions[name];
    if (!slot) {
        slot = std::make_unique<CUfunc_st>();
        slot->kernel = k;
        slot->module = module;
        d.functions.insert(slot.get());
    }
    *func = slot.get();
    return CUDA_SUCCESS;
}

EMU_API CUresult cuModuleGetGlobal_v2(CUdeviceptr* dptr, size_t* bytes, CUmodule module, const char* name) {
    REQUIRE_INIT("cuModuleGetGlobal_v2");
    if (name == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuModuleGetGlobal_v2: NULL name");
    if (!module_valid(module)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuModuleGetGlobal_v2: invalid module %p", (void*)module);
    // A __constant__ or __device__ variable is an ordinary global of the kernel library on the CPU.
    const std::vector<void*> handles = kernel_library_handles();
    for (void* h : handles) {
        void* sym = dlsym(h, name);
        if (sym == nullptr) continue;
        Dl_info info;
        void* entry = nullptr;
        if (dladdr1(sym, &info, &entry, RTLD_DL_SYMENT) == 0 || entry == nullptr) continue;
        const auto* es = static_cast<const ElfW(Sym)*>(entry);
        if (ELF64_ST_TYPE(es->st_info) != STT_OBJECT) continue;
        const size_t size = es->st_size;
        {
            Driver& d = driver();
            std::lock_guard<std::mutex> lock(d.mu);
            d.allocations.emplace(reinterpret_cast<uintptr_t>(sym), Allocation{size, nullptr}); // copies may target it
        }
        if (dptr != nullptr) *dptr = reinterpret_cast<CUdeviceptr>(sym);
        if (bytes != nullptr) *bytes = size;
        for (void* other : handles) dlclose(other);
        return CUDA_SUCCESS;
    }
    for (void* h : handles) dlclose(h);
    return fail(CUDA_ERROR_NOT_FOUND, "cuModuleGetGlobal_v2: no global variable '%s' in the kernel libraries", name);
}

EMU_API CUresult cuFuncSetAttribute(CUfunction func, CUfunction_attribute attrib, int value) {
    REQUIRE_INIT("cuFuncSetAttribute");
    if (!function_valid(func)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuFuncSetAttribute: invalid function %p", (void*)func);
    switch (attrib) {
    case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES:
        if (value < 0 || value > kMaxSmemPerBlockOptin)
            return fail(CUDA_ERROR_INVALID_VALUE,
                        "cuFuncSetAttribute: MAX_DYNAMIC_SHARED_SIZE_BYTES=%d for '%s' exceeds the device's opt-in "
                        "maximum of %d bytes",
                        value, func->kernel->name.c_str(), kMaxSmemPerBlockOptin);
        func->max_dynamic_smem = value;
        return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT:
        if (value < -1 || value > 100)
            return fail(CUDA_ERROR_INVALID_VALUE, "cuFuncSetAttribute: carveout %d not in -1..100", value);
        func->carveout = value;
        return CUDA_SUCCESS;
    default:
        return fail(CUDA_ERROR_INVALID_VALUE, "cuFuncSetAttribute: attribute %d is read-only or unsupported", attrib);
    }
}

EMU_API CUresult cuFuncGetAttribute(int* value, CUfunction_attribute attrib, CUfunction func) {
    REQUIRE_INIT("cuFuncGetAttribute");
    if (value == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuFuncGetAttribute: NULL");
    if (!function_valid(func)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuFuncGetAttribute: invalid function %p", (void*)func);
    switch (attrib) {
    case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *value = 1024; break;
    case CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: *value = 0; break; // static __shared__ size is not known on the CPU
    case CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES: *value = 0; break;
    case CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES: *value = 0; break;
    case CU_FUNC_ATTRIBUTE_NUM_REGS: *value = 32; break;
    case CU_FUNC_ATTRIBUTE_PTX_VERSION: *value = kDeviceArch; break;
    case CU_FUNC_ATTRIBUTE_BINARY_VERSION: *value = kDeviceArch; break;
    case CU_FUNC_ATTRIBUTE_CACHE_MODE_CA: *value = 0; break;
    case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: *value = func->max_dynamic_smem; break;
    case CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT: *value = func->carveout; break;
    default: return fail(CUDA_ERROR_INVALID_VALUE, "cuFuncGetAttribute: unsupported attribute %d", attrib);
    }
    return CUDA_SUCCESS;
}

EMU_API CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int* num_blocks, CUfunction func, int block_size,
                                                             size_t dynamic_smem_bytes) {
    REQUIRE_INIT("cuOccupancyMaxActiveBlocksPerMultiprocessor");
    if (num_blocks == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuOccupancyMaxActiveBlocksPerMultiprocessor: NULL");
    if (!function_valid(func))
        return fail(CUDA_ERROR_INVALID_HANDLE, "cuOccupancyMaxActiveBlocksPerMultiprocessor: invalid function");
    if (block_size <= 0 || block_size > 1024) {
        *num_blocks = 0;
        return CUDA_SUCCESS;
    }
    // Thread- and shared-memory-limited estimate for an H100 SM (registers are not known here).
    const int warps = (block_size + 31) / 32;
    int blocks = std::min(32, 64 / warps);
    if (dynamic_smem_bytes > 0) blocks = std::min<int>(blocks, static_cast<int>(233472 / (dynamic_smem_bytes + 1024)));
    *num_blocks = blocks;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                                unsigned int by, unsigned int bz, unsigned int smem, CUstream stream, void** params,
                                void** extra) {
    REQUIRE_CONTEXT("cuLaunchKernel");
    if (!function_valid(f)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuLaunchKernel: invalid function %p", (void*)f);
    REQUIRE_STREAM("cuLaunchKernel", stream);
    const emu::rt::KernelInfo& k = *f->kernel;
    const char* name = k.name.c_str();
    // The limits an H100 enforces (cudaErrorInvalidValue / CUDA_ERROR_INVALID_VALUE on the GPU).
    if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0)
        return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel '%s': zero grid or block dimension (%u,%u,%u)x(%u,%u,%u)",
                    name, gx, gy, gz, bx, by, bz);
    if (bx > 1024 || by > 1024 || bz > 64)
        return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel '%s': block (%u,%u,%u) exceeds the limits (1024,1024,64)",
                    name, bx, by, bz);
    if (uint64_t(bx) * by * bz > 1024)
        return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel '%s': %llu threads per block exceed 1024", name,
                    (unsigned long long)(uint64_t(bx) * by * bz));
    if (gx > 2147483647u || gy > 65535 || gz > 65535)
        return fail(CUDA_ERROR_INVALID_VALUE,
                    "cuLaunchKernel '%s': grid (%u,%u,%u) exceeds the limits (2147483647,65535,65535)", name, gx, gy, gz);
    if (smem > static_cast<unsigned>(f->max_dynamic_smem)) {
        if (smem > static_cast<unsigned>(kMaxSmemPerBlockOptin))
            return fail(CUDA_ERROR_INVALID_VALUE,
                        "cuLaunchKernel '%s': %u bytes of dynamic shared memory exceed the device maximum of %d", name,
                        smem, kMaxSmemPerBlockOptin);
        return fail(CUDA_ERROR_INVALID_VALUE,
                    "cuLaunchKernel '%s': %u bytes of dynamic shared memory exceed the function's limit of %d; above "
                    "48 KiB call cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) first",
                    name, smem, f->max_dynamic_smem);
    }
    std::vector<void*> packed;
    if (params != nullptr && extra != nullptr)
        return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel '%s': both kernelParams and extra given", name);
    if (extra != nullptr) {
        if (CUresult r = params_from_extra(k, extra, &packed)) return r;
        params = packed.data();
    } else if (params == nullptr && !k.param_sizes.empty()) {
        return fail(CUDA_ERROR_INVALID_VALUE, "cuLaunchKernel '%s': kernelParams is NULL but the kernel takes (%s)",
                    name, k.signature.c_str());
    }
    emu::rt::LaunchConfig cfg{{gx, gy, gz}, {bx, by, bz}, smem};
    std::string error;
    const int rc = emu::rt::launch(k, cfg, params, &error);
    if (rc != CUDA_SUCCESS) return fail(rc, "cuLaunchKernel: %s", error.c_str()); // names kernel, block, sites
    return CUDA_SUCCESS;
}

// ---- memory -------------------------------------------------------------------------------------------
EMU_API CUresult cuMemAlloc_v2(CUdeviceptr* dptr, size_t bytes) { return mem_alloc("cuMemAlloc_v2", dptr, bytes); }
EMU_API CUresult cuMemFree_v2(CUdeviceptr dptr) { return mem_free("cuMemFree_v2", dptr); }

EMU_API CUresult cuMemAllocAsync(CUdeviceptr* dptr, size_t bytes, CUstream stream) {
    REQUIRE_INIT("cuMemAllocAsync");
    REQUIRE_STREAM("cuMemAllocAsync", stream);
    return mem_alloc("cuMemAllocAsync", dptr, bytes);
}

EMU_API CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream stream) {
    REQUIRE_INIT("cuMemFreeAsync");
    REQUIRE_STREAM("cuMemFreeAsync", stream);
    return mem_free("cuMemFreeAsync", dptr);
}

EMU_API CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total_bytes) {
    REQUIRE_CONTEXT("cuMemGetInfo_v2");
    if (free_bytes == nullptr || total_bytes == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuMemGetInfo_v2: NULL");
    const uint64_t used = emu::rt::counters().live_bytes.load();
    *total_bytes = kTotalMem;
    *free_bytes = used < kTotalMem ? kTotalMem - used : 0;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuMemHostAlloc(void** pp, size_t bytes, unsigned int /*flags*/) {
    REQUIRE_CONTEXT("cuMemHostAlloc");
    if (pp == nullptr || bytes == 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuMemHostAlloc: NULL pointer or size 0");
    void* p = aligned_alloc(4096, (bytes + 4095) & ~size_t(4095));
    if (p == nullptr) return fail(CUDA_ERROR_OUT_OF_MEMORY, "cuMemHostAlloc: %zu bytes", bytes);
    *pp = p;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuMemAllocHost_v2(void** pp, size_t bytes) { return cuMemHostAlloc(pp, bytes, 0); }

EMU_API CUresult cuMemFreeHost(void* p) {
    REQUIRE_INIT("cuMemFreeHost");
    free(p);
    return CUDA_SUCCESS;
}

EMU_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t bytes) {
    return copy_htod("cuMemcpyHtoD_v2", dst, src, bytes, nullptr);
}
EMU_API CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t bytes) {
    return copy_dtoh("cuMemcpyDtoH_v2", dst, src, bytes, nullptr);
}
EMU_API CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
    return copy_dtod("cuMemcpyDtoD_v2", dst, src, bytes, nullptr);
}
EMU_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t bytes, CUstream s) {
    return copy_htod("cuMemcpyHtoDAsync_v2", dst, src, bytes, s);
}
EMU_API CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t bytes, CUstream s) {
    return copy_dtoh("cuMemcpyDtoHAsync_v2", dst, src, bytes, s);
}
EMU_API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream s) {
    return copy_dtod("cuMemcpyDtoDAsync_v2", dst, src, bytes, s);
}

EMU_API CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char v, size_t n) {
    return memset_n<unsigned char>("cuMemsetD8_v2", dst, v, n, nullptr);
}
EMU_API CUresult cuMemsetD16_v2(CUdeviceptr dst, unsigned short v, size_t n) {
    return memset_n<unsigned short>("cuMemsetD16_v2", dst, v, n, nullptr);
}
EMU_API CUresult cuMemsetD32_v2(CUdeviceptr dst, unsigned int v, size_t n) {
    return memset_n<unsigned int>("cuMemsetD32_v2", dst, v, n, nullptr);
}
EMU_API CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char v, size_t n, CUstream s) {
    return memset_n<unsigned char>("cuMemsetD8Async", dst, v, n, s);
}
EMU_API CUresult cuMemsetD16Async(CUdeviceptr dst, unsigned short v, size_t n, CUstream s) {
    return memset_n<unsigned short>("cuMemsetD16Async", dst, v, n, s);
}
EMU_API CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned int v, size_t n, CUstream s) {
    return memset_n<unsigned int>("cuMemsetD32Async", dst, v, n, s);
}

// ---- streams and events -------------------------------------------------------------------------------
EMU_API CUresult cuStreamCreateWithPriority(CUstream* stream, unsigned int flags, int priority) {
    REQUIRE_CONTEXT("cuStreamCreate");
    if (stream == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuStreamCreate: NULL");
    if (flags & ~unsigned(CU_STREAM_NON_BLOCKING)) return fail(CUDA_ERROR_INVALID_VALUE, "cuStreamCreate: flags 0x%x", flags);
    auto* s = new CUstream_st{current_context(), flags, priority};
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    d.streams.insert(s);
    *stream = s;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuStreamCreate(CUstream* stream, unsigned int flags) {
    return cuStreamCreateWithPriority(stream, flags, 0);
}

EMU_API CUresult cuStreamDestroy_v2(CUstream stream) {
    REQUIRE_INIT("cuStreamDestroy_v2");
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    if (d.streams.erase(stream) == 0) return fail(CUDA_ERROR_INVALID_HANDLE, "cuStreamDestroy_v2: invalid stream %p", (void*)stream);
    delete stream;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuStreamSynchronize(CUstream stream) {
    REQUIRE_CONTEXT("cuStreamSynchronize");
    REQUIRE_STREAM("cuStreamSynchronize", stream);
    return CUDA_SUCCESS;
}

EMU_API CUresult cuStreamQuery(CUstream stream) {
    REQUIRE_CONTEXT("cuStreamQuery");
    REQUIRE_STREAM("cuStreamQuery", stream);
    return CUDA_SUCCESS;
}

namespace {
bool event_valid(CUevent e) {
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    return d.events.count(e) != 0 && e->ctx->alive;
}
} // namespace

EMU_API CUresult cuStreamWaitEvent(CUstream stream, CUevent event, unsigned int flags) {
    REQUIRE_CONTEXT("cuStreamWaitEvent");
    REQUIRE_STREAM("cuStreamWaitEvent", stream);
    if (!event_valid(event)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuStreamWaitEvent: invalid event %p", (void*)event);
    if (flags != 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuStreamWaitEvent: flags must be 0");
    return CUDA_SUCCESS;
}

EMU_API CUresult cuEventCreate(CUevent* event, unsigned int flags) {
    REQUIRE_CONTEXT("cuEventCreate");
    if (event == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuEventCreate: NULL");
    if (flags & ~0x7u) return fail(CUDA_ERROR_INVALID_VALUE, "cuEventCreate: flags 0x%x", flags);
    auto* e = new CUevent_st;
    e->ctx = current_context();
    e->flags = flags;
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    d.events.insert(e);
    *event = e;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuEventDestroy_v2(CUevent event) {
    REQUIRE_INIT("cuEventDestroy_v2");
    Driver& d = driver();
    std::lock_guard<std::mutex> lock(d.mu);
    if (d.events.erase(event) == 0) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventDestroy_v2: invalid event %p", (void*)event);
    delete event;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuEventRecord(CUevent event, CUstream stream) {
    REQUIRE_CONTEXT("cuEventRecord");
    REQUIRE_STREAM("cuEventRecord", stream);
    if (!event_valid(event)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventRecord: invalid event %p", (void*)event);
    // Work is complete when issued, so "now" is when the stream reaches the event.
    event->time = std::chrono::steady_clock::now();
    event->recorded = true;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuEventSynchronize(CUevent event) {
    REQUIRE_CONTEXT("cuEventSynchronize");
    if (!event_valid(event)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventSynchronize: invalid event %p", (void*)event);
    return CUDA_SUCCESS;
}

EMU_API CUresult cuEventQuery(CUevent event) {
    REQUIRE_CONTEXT("cuEventQuery");
    if (!event_valid(event)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventQuery: invalid event %p", (void*)event);
    return CUDA_SUCCESS;
}

EMU_API CUresult cuEventElapsedTime(float* ms, CUevent start, CUevent end) {
    REQUIRE_CONTEXT("cuEventElapsedTime");
    if (ms == nullptr) return fail(CUDA_ERROR_INVALID_VALUE, "cuEventElapsedTime: NULL");
    if (!event_valid(start) || !event_valid(end))
        return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventElapsedTime: invalid event");
    if ((start->flags | end->flags) & CU_EVENT_DISABLE_TIMING)
        return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventElapsedTime: an event was created with CU_EVENT_DISABLE_TIMING");
    if (!start->recorded || !end->recorded)
        return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventElapsedTime: an event has not been recorded");
    *ms = std::chrono::duration<float, std::milli>(end->time - start->time).count();
    return CUDA_SUCCESS;
}

// ---- errors -------------------------------------------------------------------------------------------
namespace {
struct ErrorText {
    CUresult code;
    const char* name;
    const char* text;
};
constexpr ErrorText kErrors[] = {
    {0, "CUDA_SUCCESS", "no error"},
    {1, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {3, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {4, "CUDA_ERROR_DEINITIALIZED", "driver shutting down"},
    {100, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {101, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {200, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {201, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {209, "CUDA_ERROR_NO_BINARY_FOR_GPU", "no kernel image is available for execution on the device"},
    {218, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
    {222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION", "the provided PTX was compiled with an unsupported toolchain."},
    {400, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {500, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {600, "CUDA_ERROR_NOT_READY", "device not ready"},
    {700, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {701, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"},
    {702, "CUDA_ERROR_LAUNCH_TIMEOUT", "the launch timed out and was terminated"},
    {719, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
    {800, "CUDA_ERROR_NOT_PERMITTED", "operation not permitted"},
    {801, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {999, "CUDA_ERROR_UNKNOWN", "unknown error"},
};
const ErrorText* find_error(CUresult code) {
    for (const auto& e : kErrors)
        if (e.code == code) return &e;
    return nullptr;
}
} // namespace

EMU_API CUresult cuGetErrorName(CUresult error, const char** str) {
    if (str == nullptr) return CUDA_ERROR_INVALID_VALUE;
    const ErrorText* e = find_error(error);
    *str = e != nullptr ? e->name : nullptr;
    return e != nullptr ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

EMU_API CUresult cuGetErrorString(CUresult error, const char** str) {
    if (str == nullptr) return CUDA_ERROR_INVALID_VALUE;
    const ErrorText* e = find_error(error);
    *str = e != nullptr ? e->text : nullptr;
    return e != nullptr ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

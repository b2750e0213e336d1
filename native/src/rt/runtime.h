// The C++ interface of libemu_rt.so used by libcuda_emu.so, libcublas_emu.so and the native tests.
// (Kernels use only the C interface in emu_abi.h.)
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "emu_abi.h"

#define EMU_RT_API __attribute__((visibility("default")))

namespace emu::rt {

// CUresult values the runtime itself produces.
inline constexpr int kSuccess = 0;
inline constexpr int kInvalidValue = 1;     // CUDA_ERROR_INVALID_VALUE
inline constexpr int kOutOfMemory = 2;      // CUDA_ERROR_OUT_OF_MEMORY
inline constexpr int kLaunchFailed = 719;   // CUDA_ERROR_LAUNCH_FAILED

inline constexpr unsigned kMaxThreadsPerBlock = 1024;
inline constexpr unsigned kMaxPoolThreads = 256;

// ---- kernel registry ------------------------------------------------------------------------------
struct KernelInfo {
    std::string name;
    std::string signature;
    std::string source;
    emu_thunk_fn thunk = nullptr;
    std::vector<uint32_t> param_sizes;
    std::vector<uint32_t> param_aligns;
    mutable std::atomic<uint64_t> launches{0}; // successful and failed launches that ran
};

EMU_RT_API const KernelInfo* find_kernel(const std::string& name);
EMU_RT_API std::vector<const KernelInfo*> all_kernels(); // sorted by name

// ---- counters -------------------------------------------------------------------------------------
struct Counters {
    std::atomic<uint64_t> live_allocations{0}, live_bytes{0};
    std::atomic<uint64_t> htod_copies{0}, htod_bytes{0};
    std::atomic<uint64_t> dtoh_copies{0}, dtoh_bytes{0};
    std::atomic<uint64_t> dtod_copies{0}, dtod_bytes{0};
    std::atomic<uint64_t> launches{0}, gemm_calls{0}, memsets{0};
};
EMU_RT_API Counters& counters();
EMU_RT_API void reset_counters(); // everything except the live_* gauges, including per-kernel launches

// ---- settings -------------------------------------------------------------------------------------
enum class Policy { Forward, Reverse, Random };
struct Schedule {
    Policy policy = Policy::Forward;
    uint64_t seed = 0;
};
EMU_RT_API bool parse_schedule(const char* spec, Schedule* out); // "forward" | "reverse" | "random:<seed>"
EMU_RT_API std::string schedule_spec(const Schedule& s);
EMU_RT_API Schedule schedule();
EMU_RT_API void set_schedule(const Schedule& s);
EMU_RT_API unsigned threads();           // OS threads used by a launch
EMU_RT_API unsigned default_threads();   // CPUs available to the process
EMU_RT_API bool set_threads(unsigned n); // 0 = default; false if n > kMaxPoolThreads
EMU_RT_API size_t fiber_stack_bytes();
// Non-empty when a BLOCKDANCE_EMU_* environment variable could not be parsed (cuInit reports it).
EMU_RT_API std::string env_error();

// ---- launches -------------------------------------------------------------------------------------
struct LaunchConfig {
    emu_uint3 grid;
    emu_uint3 block;
    unsigned dyn_smem_bytes;
};

// Runs the grid to completion on the pool.  Limits are the caller's business (the driver surface
// checks them); this only rejects shapes it cannot represent.  Returns kSuccess, kInvalidValue,
// kOutOfMemory or kLaunchFailed (divergent barrier, deadlock, warp-op misuse, __trap), with a
// message in *error.
EMU_RT_API int launch(const KernelInfo& kernel, const LaunchConfig& cfg, void** args, std::string* error);

// ---- last error (per calling OS thread) -----------------------------------------------------------
EMU_RT_API void set_last_error(const std::string& message);
EMU_RT_API const char* last_error();

// printf into a std::string.
EMU_RT_API std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

} // namespace emu::rt

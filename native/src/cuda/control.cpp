// The emulator-control C API of libcuda_emu.so (emu_control.h).
#include <string>

#include "emu_control.h"
#include "emu_cuda.h"
#include "rt/runtime.h"

#define EMU_API extern "C" __attribute__((visibility("default")))

namespace {
// Strings handed back to C callers stay valid until the same thread asks again.
thread_local std::string tl_schedule_text;
thread_local std::string tl_kernel_list;
} // namespace

EMU_API int emu_set_threads(unsigned n) {
    if (!emu::rt::set_threads(n)) {
        emu::rt::set_last_error(emu::rt::format("emu_set_threads: %u exceeds the maximum of %u", n, emu::rt::kMaxPoolThreads));
        return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

EMU_API unsigned emu_get_threads(void) { return emu::rt::threads(); }

EMU_API int emu_set_schedule(const char* spec) {
    emu::rt::Schedule s;
    if (!emu::rt::parse_schedule(spec, &s)) {
        emu::rt::set_last_error(emu::rt::format("emu_set_schedule: '%s' is not forward, reverse or random:<seed>",
                                                spec != nullptr ? spec : "(null)"));
        return CUDA_ERROR_INVALID_VALUE;
    }
    emu::rt::set_schedule(s);
    return CUDA_SUCCESS;
}

EMU_API const char* emu_get_schedule(void) {
    tl_schedule_text = emu::rt::schedule_spec(emu::rt::schedule());
    return tl_schedule_text.c_str();
}

EMU_API const char* emu_last_error(void) { return emu::rt::last_error(); }

EMU_API const char* emu_kernel_signature(const char* name) {
    if (name == nullptr) return nullptr;
    const emu::rt::KernelInfo* k = emu::rt::find_kernel(name);
    return k != nullptr ? k->signature.c_str() : nullptr; // registry entries live for the whole process
}

EMU_API const char* emu_kernel_list(void) {
    tl_kernel_list.clear();
    for (const auto* k : emu::rt::all_kernels())
        tl_kernel_list += k->name + " " + (k->signature.empty() ? "-" : k->signature) + " " + k->source + "\n";
    return tl_kernel_list.c_str();
}

EMU_API void emu_get_counters(emu_counters* out) {
    if (out == nullptr) return;
    const emu::rt::Counters& c = emu::rt::counters();
    out->live_allocations = c.live_allocations.load();
    out->live_bytes = c.live_bytes.load();
    out->htod_copies = c.htod_copies.load();
    out->htod_bytes = c.htod_bytes.load();
    out->dtoh_copies = c.dtoh_copies.load();
    out->dtoh_bytes = c.dtoh_bytes.load();
    out->dtod_copies = c.dtod_copies.load();
    out->dtod_bytes = c.dtod_bytes.load();
    out->launches = c.launches.load();
    out->gemm_calls = c.gemm_calls.load();
    out->memsets = c.memsets.load();
}

EMU_API void emu_reset_counters(void) { emu::rt::reset_counters(); }

EMU_API uint64_t emu_launch_count(const char* kernel_name) {
    if (kernel_name == nullptr) return 0;
    const emu::rt::KernelInfo* k = emu::rt::find_kernel(kernel_name);
    return k != nullptr ? k->launches.load() : 0;
}

static_assert(sizeof(emu_counters) == 11 * sizeof(uint64_t), "emu_counters is 11 packed uint64 fields");

/*
 * emu_control.h - the emulator-control C API exported by libcuda_emu.so (next to the CUDA driver
 * surface).  For tests: choose thread counts and schedules, read errors and counters.
 * Documented in native/README.md.
 */
#ifndef BLOCKDANCE_EMU_CONTROL_H
#define BLOCKDANCE_EMU_CONTROL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 11 x uint64, in this order (88 bytes, no padding). */
typedef struct emu_counters {
    uint64_t live_allocations; /* device allocations currently alive (cuMemAlloc_v2/cuMemAllocAsync) */
    uint64_t live_bytes;       /* their requested sizes */
    uint64_t htod_copies;      /* cuMemcpyHtoD*_v2 calls */
    uint64_t htod_bytes;
    uint64_t dtoh_copies;      /* cuMemcpyDtoH*_v2 calls */
    uint64_t dtoh_bytes;
    uint64_t dtod_copies;      /* cuMemcpyDtoD*_v2 calls */
    uint64_t dtod_bytes;
    uint64_t launches;         /* kernel launches that ran (passed the launch checks) */
    uint64_t gemm_calls;       /* cublasGemmEx / cublasGemmStridedBatchedEx / cublasSgemm_v2 calls */
    uint64_t memsets;          /* cuMemsetD*_v2 / cuMemsetD*Async calls */
} emu_counters;

/* OS threads that run a grid's blocks; 0 restores the default (the CPUs available to the process).
 * Returns 0, or CUDA_ERROR_INVALID_VALUE (1) above 256. */
int emu_set_threads(unsigned n);
unsigned emu_get_threads(void);

/* "forward", "reverse" or "random:<seed>" (decimal or 0x-hex uint64).  Returns 0, or 1 for an
 * unknown spec (the setting is then unchanged). */
int emu_set_schedule(const char* spec);
/* The current schedule spec; valid until the next call from this thread. */
const char* emu_get_schedule(void);

/* The message of the most recent failing emulator call on the calling OS thread ("" if none). */
const char* emu_last_error(void);

/* The parameter signature of a registered kernel (one char per parameter: p pointer, i/u 32-bit
 * int, l/L 64-bit int, h/H 16-bit, c/C 8-bit, b bool, f float, d double, S struct), or NULL. */
const char* emu_kernel_signature(const char* name);
/* All registered kernels as "name signature source" lines, sorted by name; valid until the next
 * call from this thread. */
const char* emu_kernel_list(void);

void emu_get_counters(emu_counters* out);
void emu_reset_counters(void); /* all but live_allocations/live_bytes; also the per-kernel counts */
uint64_t emu_launch_count(const char* kernel_name); /* 0 for unknown names */

#ifdef __cplusplus
}
#endif

#endif /* BLOCKDANCE_EMU_CONTROL_H */

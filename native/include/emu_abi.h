/*
 * emu_abi.h - the binary interface between emulated kernels and libemu_rt.so.
 *
 * Kernel code never includes this directly: emu.h (pre-included by the build before prelude.cuh)
 * includes it and turns the CUDA built-ins into calls of these functions.  The runtime includes it
 * without the kernel-language macros.
 *
 * Everything here is plain C so that the layout is obvious and stable.
 */
#ifndef BLOCKDANCE_EMU_ABI_H
#define BLOCKDANCE_EMU_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The CUDA uint3.  emu.h makes `uint3` a typedef of this struct, so the built-in index macros can
 * hand out `const uint3&` without any cast between unrelated types. */
typedef struct emu_uint3 {
    unsigned x, y, z;
} emu_uint3;

/* Per-OS-thread built-ins, rewritten by the scheduler at every fiber switch.
 * Defined in libemu_rt.so with the initial-exec TLS model (one %fs-relative load per read, see
 * cuda-on-cpu.md section 2.4).  Keep it small: libemu_rt.so's whole TLS segment must fit in glibc's
 * static TLS surplus when .NET dlopen()s the emulator. */
typedef struct emu_builtins {
    emu_uint3 thread_idx;
    emu_uint3 block_idx;
    emu_uint3 block_dim;
    emu_uint3 grid_dim;
    void* dyn_smem; /* this worker's dynamic shared memory (poisoned at every block start) */
    void* worker;   /* runtime-private: the worker running the current block, NULL outside launches */
} emu_builtins;

extern __thread emu_builtins emu_builtins_tls __attribute__((tls_model("initial-exec")));

/* Block-wide barriers: __syncthreads and its counting/voting variants. */
enum emu_barrier_kind {
    EMU_BAR_SYNC = 0,
    EMU_BAR_COUNT = 1,
    EMU_BAR_AND = 2,
    EMU_BAR_OR = 3
};

/* Warp-level operations; each is a barrier among the lanes of one warp named by `mask`. */
enum emu_warp_kind {
    EMU_SHFL_IDX = 0,
    EMU_SHFL_UP = 1,
    EMU_SHFL_DOWN = 2,
    EMU_SHFL_XOR = 3,
    EMU_BALLOT = 4,
    EMU_ANY = 5,
    EMU_ALL = 6,
    EMU_SYNCWARP = 7
};

/* Returns the barrier's result (count / and / or of `pred`; 0 for EMU_BAR_SYNC). */
int emu_barrier(int kind, int pred, const char* file, int line);

/* `value` carries the caller's bits (shuffles) or predicate (votes); `arg` is srcLane, delta or
 * laneMask; `width` the shuffle segment width.  Returns the result bits. */
uint64_t emu_warp_op(int kind, unsigned mask, uint64_t value, int arg, int width, const char* file, int line);

/* __trap(): fails the launch with CUDA_ERROR_LAUNCH_FAILED naming the site. Never returns. */
void emu_trap(const char* file, int line) __attribute__((noreturn));

/* One exported kernel.  `thunk(args)` calls the kernel with `*(Ti*)args[i]`, exactly as
 * cuLaunchKernel's kernelParams.  `signature` has one character per parameter:
 *   p pointer, b bool, c/C 8-bit signed/unsigned, h/H 16-bit, i/u 32-bit, l/L 64-bit, f float,
 *   d double, S anything else (struct passed by value). */
typedef void (*emu_thunk_fn)(void** args);

typedef struct emu_kernel_desc {
    const char* name;
    emu_thunk_fn thunk;
    const char* signature;
    unsigned num_params;
    const uint32_t* param_sizes;  /* num_params entries */
    const uint32_t* param_aligns; /* num_params entries */
    const char* source;           /* the .cu file the kernel came from */
} emu_kernel_desc;

/* Called by the static initialisers that EMU_EXPORT generates.  Returns 0, or -1 for a duplicate
 * name (the first registration wins; the clash is printed on stderr). */
int emu_register_kernel(const emu_kernel_desc* desc);

#ifdef __cplusplus
}
#endif

#endif /* BLOCKDANCE_EMU_ABI_H */

// Deliberately broken kernels: the emulator must catch each one (native/tests/broken_kernel_test.cpp).
// The @markers name the source lines the error messages must point at.
#include "prelude.cuh"

// Missing __syncthreads between the store and the neighbour's load.  Under the forward schedule
// thread t-1 has always finished before t starts, so the bug hides; reverse and random expose it.
extern "C" __global__ void missing_barrier(const float* in, float* out) {
    DYN_SMEM(float, s);
    const unsigned t = threadIdx.x;
    s[t] = in[blockIdx.x * blockDim.x + t];
    // BUG: __syncthreads() missing here
    const float left = t > 0u ? s[t - 1u] : 0.0f;
    out[blockIdx.x * blockDim.x + t] = s[t] + left;
}

// The fixed version (same sharedMemBytes).
extern "C" __global__ void with_barrier(const float* in, float* out) {
    DYN_SMEM(float, s);
    const unsigned t = threadIdx.x;
    s[t] = in[blockIdx.x * blockDim.x + t];
    __syncthreads();
    const float left = t > 0u ? s[t - 1u] : 0.0f;
    out[blockIdx.x * blockDim.x + t] = s[t] + left;
}

// Even and odd threads wait at different barriers.
extern "C" __global__ void divergent_barrier(int* out) {
    if (threadIdx.x % 2u == 0u) {
        __syncthreads(); // @divergent-even
    } else {
        __syncthreads(); // @divergent-odd
    }
    out[threadIdx.x] = 1;
}

// Odd lanes wait at the block barrier while even lanes wait for them in a full-warp shuffle.
extern "C" __global__ void barrier_shuffle_deadlock(int* out) {
    int v = (int)threadIdx.x;
    if (threadIdx.x % 2u == 1u) {
        __syncthreads(); // @deadlock-barrier
    } else {
        v = __shfl_xor_sync(0xffffffffu, v, 2); // @deadlock-shuffle
    }
    out[threadIdx.x] = v;
}

// Lanes of one warp use overlapping but different masks.  (The __syncwarp makes both groups of
// lanes arrive together under every schedule.)
extern "C" __global__ void mismatched_masks(int* out) {
    int v = (int)threadIdx.x;
    __syncwarp();
    if (threadIdx.x < 16u) v = __shfl_xor_sync(0x0000ffffu, v, 1); // @mask-half
    else v = __shfl_xor_sync(0xffffffffu, v, 1);                     // @mask-full
    out[threadIdx.x] = v;
}

// A lane calls a warp op with a mask that leaves itself out.
extern "C" __global__ void lane_not_in_mask(int* out) {
    out[threadIdx.x] = __shfl_sync(0x1u, (int)threadIdx.x, 0); // @not-in-mask
}

// __trap() in one thread of one block.
extern "C" __global__ void trap_in_block(int* out, int bad_block) {
    if ((int)blockIdx.x == bad_block && threadIdx.x == 3u) __trap(); // @trap
    out[blockIdx.x * blockDim.x + threadIdx.x] = 1;
}

// Uses any amount of dynamic shared memory (for the launch-limit tests).
extern "C" __global__ void touch_dynamic_smem(float* out, int n) {
    DYN_SMEM(float, s);
    for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = (float)i;
    __syncthreads();
    if (threadIdx.x == 0u) out[blockIdx.x] = s[n - 1];
}

// A frame larger than a fiber stack (64 KiB by default) but smaller than the stacks of the block
// together: without page probing its bottom would land inside a neighbouring fiber's stack.  It must
// fault on the guard page instead.
extern "C" __global__ void stack_hog(int* out, int i) {
    volatile char big[96 * 1024];
    big[i] = 1;
    out[threadIdx.x] = big[i];
}

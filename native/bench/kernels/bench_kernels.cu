// Kernels for the emulator benchmark (native/bench/emu_bench.cpp).
#include "prelude.cuh"

// Barrier-free: runs entirely in direct mode (no fiber switches).
extern "C" __global__ void bench_saxpy(float* y, const float* x, float a, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}

// `iters` block-wide barriers with a little shared-memory traffic between them (blockDim.x must be
// a power of two).
extern "C" __global__ void bench_barriers(float* out, int iters) {
    __shared__ float s[1024];
    const unsigned t = threadIdx.x, mask = blockDim.x - 1u;
    float acc = 0.0f;
    s[t] = (float)t;
    for (int k = 0; k < iters; ++k) {
        __syncthreads();
        acc += s[(t + (unsigned)k) & mask];
    }
    out[blockIdx.x * blockDim.x + t] = acc;
}

// `iters` full-warp butterfly reductions (5 shuffles each).
extern "C" __global__ void bench_shuffles(float* out, int iters) {
    float v = (float)threadIdx.x;
    for (int k = 0; k < iters; ++k) v = warp_reduce_sum(v) * 0.03125f;
    out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

// Test kernels: block reductions with shared memory and barriers (native/tests/kernel_test.cpp).
// Valid CUDA for NVRTC (tests/nvrtc_compile_test.cpp compiles this file for sm_80 and sm_90).
#include "prelude.cuh"

// Tree reduction in static shared memory; blockDim.x must be a power of two <= 1024.
// out[blockIdx.x] = sum of in[blockIdx.x * blockDim.x ... + blockDim.x - 1] (0 past n).
extern "C" __global__ void reduce_static_smem(const float* in, float* out, int n) {
    __shared__ float partial[1024];
    const unsigned t = threadIdx.x;
    const int i = blockIdx.x * blockDim.x + t;
    partial[t] = i < n ? in[i] : 0.0f;
    __syncthreads();
    for (unsigned stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (t < stride) partial[t] += partial[t + stride];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = partial[0];
}

// The same in dynamic shared memory (sharedMemBytes = blockDim.x * sizeof(float)).
extern "C" __global__ void reduce_dynamic_smem(const float* in, float* out, int n) {
    DYN_SMEM(float, partial);
    const unsigned t = threadIdx.x;
    const int i = blockIdx.x * blockDim.x + t;
    partial[t] = i < n ? in[i] : 0.0f;
    __syncthreads();
    for (unsigned stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (t < stride) partial[t] += partial[t + stride];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = partial[0];
}

// The prelude's block_reduce_sum/max (warp shuffles + barriers), twice with the same scratch.
extern "C" __global__ void reduce_prelude(const float* in, float* sums, float* maxes, int n) {
    __shared__ float scratch[32];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const float v = i < n ? in[i] : 0.0f;
    const float s = block_reduce_sum(v, scratch);
    const float m = block_reduce_max(i < n ? v : -1e30f, scratch);
    // Every thread got the result; thread blockDim.x - 1 reports it so that a broadcast bug shows.
    if (threadIdx.x == blockDim.x - 1) {
        sums[blockIdx.x] = s;
        maxes[blockIdx.x] = m;
    }
}

// __syncthreads_count / _and / _or with a predicate chosen per thread.
extern "C" __global__ void barrier_votes(const int* pred, int* out) {
    const int p = pred[blockIdx.x * blockDim.x + threadIdx.x];
    const int count = __syncthreads_count(p);
    const int all = __syncthreads_and(p);
    const int any = __syncthreads_or(p);
    if (threadIdx.x == 0) {
        out[3 * blockIdx.x + 0] = count;
        out[3 * blockIdx.x + 1] = all;
        out[3 * blockIdx.x + 2] = any;
    }
}

// Threads past `active` return before the barriers; the others still complete the reduction
// (exited threads leave the barrier, as on the GPU).
extern "C" __global__ void reduce_early_exit(const float* in, float* out, int active) {
    __shared__ float partial[1024];
    const unsigned t = threadIdx.x;
    if ((int)t >= active) return;
    partial[t] = in[blockIdx.x * active + t];
    __syncthreads();
    if (t == 0) {
        float s = 0.0f;
        for (int j = 0; j < active; ++j) s += partial[j];
        out[blockIdx.x] = s;
    }
}

// Reads dynamic shared memory before writing it: must see the poison (all bits set) in every block.
extern "C" __global__ void read_uninitialised_smem(unsigned* out) {
    DYN_SMEM(unsigned, raw);
    out[blockIdx.x * blockDim.x + threadIdx.x] = raw[threadIdx.x];
    __syncthreads();
    raw[threadIdx.x] = 0u; // dirty it for the next block on this worker
}

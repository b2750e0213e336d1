// Test kernels: atomics (native/tests/kernel_test.cpp).
#include "prelude.cuh"

// Histogram of in[] into `bins` bins: per-block shared histogram, then global atomics.
extern "C" __global__ void histogram(const unsigned* in, unsigned* hist, int n, int bins) {
    __shared__ unsigned local[256];
    for (int b = threadIdx.x; b < bins; b += blockDim.x) local[b] = 0u;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        atomicAdd(&local[in[i] % (unsigned)bins], 1u);
    __syncthreads();
    for (int b = threadIdx.x; b < bins; b += blockDim.x)
        if (local[b] != 0u) atomicAdd(&hist[b], local[b]);
}

// One of every other atomic; acc = {int sum, int max, int min, unsigned inc counter, unsigned and,
// unsigned or, cas counter, float sum (as bits), unsigned long long sum (two words)}.
extern "C" __global__ void atomic_mix(const int* in, int* acc, float* fsum, unsigned long long* llsum, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int v = in[i];
    atomicAdd(&acc[0], v);
    atomicMax(&acc[1], v);
    atomicMin(&acc[2], v);
    atomicInc((unsigned*)&acc[3], 1000000u);
    atomicAnd((unsigned*)&acc[4], ~(1u << (i % 32)));
    atomicOr((unsigned*)&acc[5], 1u << (v & 31));
    // CAS loop increment.
    int old = acc[6], assumed;
    do {
        assumed = old;
        old = atomicCAS(&acc[6], assumed, assumed + 1);
    } while (old != assumed);
    atomicSub(&acc[7], 1);
    atomicAdd(fsum, 0.5f);
    atomicAdd(llsum, (unsigned long long)(v + 1000));
}

// elementwise.cu - IOps.Silu and IOps.Add: y = x·σ(x), y = a + b.
//
// Launch (src/Kernels/CudaBackend/CudaOps.Elementwise.cs): 1-D grid-stride loop, 256 threads per block,
// grid = min(ceil(total / 256), 8 blocks per SM): memory-bound, one element per thread per iteration,
// one full wave of blocks at most. 32-bit unsigned indices (the launcher guarantees total < 2^31).
// Outputs may alias inputs (IOps allows y == x, y == a), so no pointer is __restrict__: each element is
// read and written by the same thread.
// SiLU is x / (1 + exp(-x)) with full-precision expf, the formula of the CPU device (CpuMath.Silu).
#include "prelude.cuh"

template <class T>
__device__ __forceinline__ void silu_impl(const T* x, T* y, unsigned total) {
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const float v = to_float(x[i]);
        y[i] = from_float<T>(v / (1.0f + expf(-v)));
    }
}

template <class T>
__device__ __forceinline__ void add_impl(const T* a, const T* b, T* y, unsigned total) {
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride)
        y[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
}

#define ELEMENTWISE(T, SUFFIX)                                                                           \
    extern "C" __global__ void silu_##SUFFIX(const T* x, T* y, int total) {                              \
        silu_impl<T>(x, y, (unsigned)total);                                                             \
    }                                                                                                    \
    extern "C" __global__ void add_##SUFFIX(const T* a, const T* b, T* y, int total) {                   \
        add_impl<T>(a, b, y, (unsigned)total);                                                           \
    }

ELEMENTWISE(float, f32)
ELEMENTWISE(f16, f16)
ELEMENTWISE(bf16, bf16)

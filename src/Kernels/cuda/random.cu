// random.cu - IOps.RandomNormal: standard normal samples as a pure function of (seed, offset + index).
//
// Exactly the function of src/Kernels/Philox.cs (the CPU device), so that every backend draws the same
// noise: element g uses the Philox4x32-10 counter (g/2 low, g/2 high, 0, 0) and key (seed low, seed high);
// its first two output words give u1 = ((w0 >> 9) + 0.5)·2⁻²³ and u2 likewise (exact in float32, never 0
// or 1); Box–Muller r = sqrt(−2·ln u1), θ = 2π·u2 (2π as the float 6.2831855f); even g takes r·cos θ, odd
// g r·sin θ. Accurate logf/sqrtf/cosf/sinf on purpose, not the __logf/__sinf intrinsics: on the emulator
// (glibc, like .NET's MathF) the draw is bit-identical to the CPU's, on a GPU within a few ulp.
// Each element recomputes its pair's Philox block (the CPU does too): the offset may be odd, so pairs do
// not line up with threads, and 10 rounds of two 32-bit multiplies are cheap next to the transcendentals.
//
// Launch (CudaOps.Random.cs): 1-D grid-stride, 256 threads per block, grid = min(ceil(n / 256),
// 8 blocks per SM). y is float32, or the activation type when the sampler keeps its noise there (then
// the float sample is rounded once to that type). 32-bit unsigned indices (n < 2^31, checked).
#include "prelude.cuh"

// Philox4x32-10 (Salmon et al., SC 2011) with the constants of Philox.cs; returns the first two words.
__device__ __forceinline__ void philox_first_two(unsigned c0, unsigned c1, unsigned k0, unsigned k1, unsigned& r0,
                                                 unsigned& r1) {
    unsigned c2 = 0u, c3 = 0u;
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        const unsigned hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        const unsigned hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        const unsigned n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    r0 = c0;
    r1 = c1;
}

__device__ __forceinline__ float uniform_from_word(unsigned w) { return ((float)(w >> 9) + 0.5f) * (1.0f / 8388608.0f); }

__device__ __forceinline__ float philox_normal(uint64_t seed, uint64_t index) {
    const uint64_t pair = index >> 1;
    unsigned r0, r1;
    philox_first_two((unsigned)pair, (unsigned)(pair >> 32), (unsigned)seed, (unsigned)(seed >> 32), r0, r1);
    const float radius = sqrtf(-2.0f * logf(uniform_from_word(r0)));
    const float angle = 6.2831855f * uniform_from_word(r1);
    return (index & 1u) == 0u ? radius * cosf(angle) : radius * sinf(angle);
}

template <class T>
__device__ __forceinline__ void random_normal(T* y, uint64_t seed, uint64_t offset, unsigned n) {
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = from_float<T>(philox_normal(seed, offset + i));
}

#define RANDOM(T, SUFFIX)                                                                                  \
    extern "C" __global__ void random_normal_##SUFFIX(T* y, uint64_t seed, uint64_t offset, int n) {       \
        random_normal<T>(y, seed, offset, (unsigned)n);                                                    \
    }

RANDOM(float, f32)
RANDOM(f16, f16)
RANDOM(bf16, bf16)

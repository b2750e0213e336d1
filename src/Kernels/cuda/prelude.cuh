// prelude.cuh - the one header every kernel file includes (`#include "prelude.cuh"`).
//
// Valid for both compilers of the same .cu source:
//   * NVRTC receives this file as an in-memory header named "prelude.cuh" (__CUDA_ARCH__ defined);
//   * g++ compiles kernels with native/include/emu.h pre-included (-include emu.h), which supplies
//     the CUDA built-ins on the CPU (native/README.md lists them).
// Header-only, and it includes nothing: NVRTC has no include paths.
//
// Provides:
//   int8_t ... uint64_t            fixed-width integers (NVRTC has no <stdint.h>)
//   bf16, f16                      16-bit storage types: struct { unsigned short bits; }
//   bf16x2                         two bf16 in 4 bytes, for 32-bit loads/stores
//   to_float(x)                    float, bf16 or f16 -> float (exact)
//   from_float<T>(float)           float -> float / bf16 / f16, round-to-nearest-even, NaN -> 0x7fff
//   DYN_SMEM(T, name)              `T* name` pointing at the launch's dynamic shared memory
//   warp_reduce_sum/max(float)     full-warp butterfly reductions (all 32 lanes get the result)
//   block_reduce_sum/max(v, smem)  block reductions for 1-D blocks whose size is a multiple of 32;
//                                  `smem` is a __shared__ float[32] scratch; every thread gets it
//   ceil_div(a, b)
#pragma once

#if defined(__CUDACC_RTC__)
// The same types as glibc's <stdint.h> on x86-64 Linux, so kernels mean the same thing on both sides.
typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef short int16_t;
typedef unsigned short uint16_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef long int64_t;
typedef unsigned long uint64_t;
#endif

// ---- 16-bit floating-point storage types ----------------------------------------------------------
// Plain structs, not CUDA's __nv_bfloat16/__half (which need headers NVRTC cannot open): the math is
// done in float, these only carry bits.  Distinct types so that to_float() can be overloaded.
struct __align__(2) bf16 {
    unsigned short bits;
};
struct __align__(2) f16 {
    unsigned short bits;
};
struct __align__(4) bf16x2 {
    bf16 x, y;
};

__device__ __forceinline__ float to_float(float x) { return x; }

// bf16 -> float is exact: the bf16 bits are the top half of the float (NaN payloads are kept).
__device__ __forceinline__ float to_float(bf16 x) { return __uint_as_float((unsigned)x.bits << 16); }

__device__ __forceinline__ float to_float(f16 x) {
#if defined(__CUDA_ARCH__)
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
    return f;
#else
    // Exact widening.  NaN becomes the canonical 0x7fffffff, as CUDA's host-side conversion does.
    unsigned h = x.bits;
    unsigned sign = (h & 0x8000u) << 16;
    unsigned exp = (h >> 10) & 0x1fu;
    unsigned man = h & 0x3ffu;
    if (exp == 0x1fu) return __uint_as_float(man != 0u ? 0x7fffffffu : (sign | 0x7f800000u));
    if (exp == 0u) {
        if (man == 0u) return __uint_as_float(sign);
        // Subnormal: value = man * 2^-24; normalise the mantissa.
        int e = 1;
        while ((man & 0x400u) == 0u) {
            man <<= 1;
            --e;
        }
        man &= 0x3ffu;
        return __uint_as_float(sign | ((unsigned)(e + 112) << 23) | (man << 13));
    }
    return __uint_as_float(sign | ((exp + 112u) << 23) | (man << 13));
#endif
}

__device__ __forceinline__ float2 to_float2(bf16x2 v) { return make_float2(to_float(v.x), to_float(v.y)); }

template <class T> __device__ __forceinline__ T from_float(float x);

template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }

template <> __device__ __forceinline__ bf16 from_float<bf16>(float x) {
    bf16 r;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.bits) : "f"(x)); // sm_80+
#else
    // The CPU, and GPUs before sm_80 (no bf16 cvt): the same rounding in integer arithmetic.
    unsigned u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        r.bits = 0x7fffu; // canonical NaN
    } else {
        // Round to nearest, ties to even: add just under half an ulp, plus one if the kept lsb is odd.
        u += 0x7fffu + ((u >> 16) & 1u);
        r.bits = (unsigned short)(u >> 16);
    }
#endif
    return r;
}

template <> __device__ __forceinline__ f16 from_float<f16>(float x) {
    f16 r;
#if defined(__CUDA_ARCH__)
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(x));
#else
    unsigned u = __float_as_uint(x);
    unsigned sign = (u >> 16) & 0x8000u;
    unsigned a = u & 0x7fffffffu;
    if (a > 0x7f800000u) {
        r.bits = 0x7fffu; // canonical NaN
    } else if (a >= 0x477ff000u) {
        r.bits = (unsigned short)(sign | 0x7c00u); // >= 65520 rounds to infinity
    } else if (a >= 0x38800000u) {
        // Normal half: re-bias the exponent (127 -> 15) and round the 23-bit mantissa to 10 bits.
        unsigned v = a - 0x38000000u;
        v = (v + 0xfffu + ((v >> 13) & 1u)) >> 13;
        r.bits = (unsigned short)(sign | v);
    } else if (a <= 0x33000000u) {
        r.bits = (unsigned short)sign; // <= 2^-25 rounds to zero (2^-25 itself is a tie to even 0)
    } else {
        // Subnormal half: count units of 2^-24 with round-to-nearest-even.
        unsigned e = a >> 23;
        unsigned m = (a & 0x7fffffu) | 0x800000u;
        unsigned shift = 126u - e; // 14..24
        unsigned q = m >> shift;
        unsigned rem = m & ((1u << shift) - 1u);
        unsigned half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) ++q;
        r.bits = (unsigned short)(sign | q);
    }
#endif
    return r;
}

// ---- dynamic shared memory --------------------------------------------------------------------------
// DYN_SMEM(float, red);  declares `float* red` at the start of the launch's dynamic shared memory
// (the cuLaunchKernel sharedMemBytes).  Every DYN_SMEM in a kernel points at the same base; carve
// several arrays out of one by offsetting.  16-byte aligned on both sides (128 on the CPU).
#if defined(__CUDA_ARCH__)
#define DYN_SMEM(T, name)                                                                          \
    extern __shared__ __align__(16) unsigned char dyn_smem_raw_##name[];                           \
    T* name = reinterpret_cast<T*>(dyn_smem_raw_##name)
#else
#define DYN_SMEM(T, name) T* name = reinterpret_cast<T*>(emu_dyn_smem())
#endif

// ---- small helpers --------------------------------------------------------------------------------
__device__ __forceinline__ unsigned ceil_div(unsigned a, unsigned b) { return (a + b - 1u) / b; }

__device__ __forceinline__ float warp_reduce_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warp_reduce_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// Block-wide reductions for 1-D blocks with blockDim.x a multiple of 32 (at most 1024).
// The leading barrier makes back-to-back calls with the same scratch safe.
__device__ __forceinline__ float block_reduce_sum(float v, float* scratch) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_reduce_sum(v);
    __syncthreads();
    if (lane == 0u) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : 0.0f;
    return warp_reduce_sum(v);
}

__device__ __forceinline__ float block_reduce_max(float v, float* scratch) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_reduce_max(v);
    __syncthreads();
    if (lane == 0u) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : -__int_as_float(0x7f800000); // -inf
    return warp_reduce_max(v);
}

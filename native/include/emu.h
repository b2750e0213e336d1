/*
 * emu.h - the CUDA kernel language for g++ (the CPU side of "one .cu, two compilers").
 *
 * The build compiles every kernel file as   g++ -std=c++20 -include emu.h  X.cu
 * so that the kernel's own `#include "prelude.cuh"` sees these definitions first.  NVRTC never sees
 * this file; the prelude is the only header shared by both compilers.
 *
 * What it maps (see native/README.md for the full list and the rules kernel authors follow):
 *   - qualifiers: __global__/__device__/__host__/__constant__ vanish, __shared__ becomes
 *     `static thread_local` (one OS thread runs one block at a time, so its TLS *is* the block's
 *     shared memory);
 *   - threadIdx/blockIdx/blockDim/gridDim read the scheduler-maintained TLS block in libemu_rt.so;
 *   - barriers, warp shuffles and votes call into the fiber scheduler with their source location;
 *   - atomics are real (relaxed) atomics because blocks run in parallel on several OS threads;
 *   - the math/bit intrinsics our kernels use, computed at full precision (GPU approximations such
 *     as __expf differ in the last bits: compare with tolerances).
 *
 * Compiled with EMU_SCAN defined (the manifest generator's `g++ -E` pass), it only defines the
 * qualifiers so that `__global__` survives preprocessing as a marker and no system header is read.
 */
#ifndef BLOCKDANCE_EMU_H
#define BLOCKDANCE_EMU_H

#if defined(__CUDACC__) || defined(__CUDA_ARCH__)
#error "emu.h is the g++ side of the kernel language; NVRTC/nvcc must not include it"
#endif

#if defined(EMU_SCAN)
/* ---- manifest scan: just enough for `g++ -E` to expose the kernels' names ---------------------- */
#define __global__ __emu_global__
#define __device__
#define __host__
#define __constant__
#define __shared__
#define __forceinline__
#define __noinline__
#define __launch_bounds__(...)
#define __align__(n)
#define __grid_constant__
#else /* !EMU_SCAN */

#include <math.h> /* libstdc++'s <math.h> also puts the float overloads (std::isnan, ...) in :: */
#include <stdint.h>
#include <stdio.h> /* device-side printf */
#include <string.h>
#include <limits>
#include <type_traits>
#include <utility>

#include "emu_abi.h"

/* ---- qualifiers ------------------------------------------------------------------------------- */
#define __global__
#define __device__
#define __host__
#define __constant__
#define __grid_constant__
/* A function-local `static thread_local` of trivial type has no guard variable and uses the
 * default (dynamic) TLS model, so kernel libraries stay dlopen()-able.  `extern __shared__ T x[];`
 * cannot be expressed this way: use DYN_SMEM(T, name) from the prelude. */
#define __shared__ static thread_local
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

/* ---- vector and index types ------------------------------------------------------------------- */
typedef emu_uint3 uint3;

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

inline constexpr uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }

/* CUDA's vector types with CUDA's alignments (float2/int2 8 bytes, float4/int4 16 bytes). */
#define EMU_VEC2(T, N, A)                                                                         \
    struct __attribute__((aligned(A))) N {                                                        \
        T x, y;                                                                                   \
    };                                                                                            \
    inline constexpr N make_##N(T x, T y) { return N{x, y}; }
#define EMU_VEC3(T, N)                                                                            \
    struct N {                                                                                    \
        T x, y, z;                                                                                \
    };                                                                                            \
    inline constexpr N make_##N(T x, T y, T z) { return N{x, y, z}; }
#define EMU_VEC4(T, N, A)                                                                         \
    struct __attribute__((aligned(A))) N {                                                        \
        T x, y, z, w;                                                                             \
    };                                                                                            \
    inline constexpr N make_##N(T x, T y, T z, T w) { return N{x, y, z, w}; }
EMU_VEC2(float, float2, 8)
EMU_VEC3(float, float3)
EMU_VEC4(float, float4, 16)
EMU_VEC2(int, int2, 8)
EMU_VEC3(int, int3)
EMU_VEC4(int, int4, 16)
EMU_VEC2(unsigned, uint2, 8)
EMU_VEC4(unsigned, uint4, 16)
EMU_VEC2(double, double2, 16)
EMU_VEC2(short, short2, 4)
EMU_VEC2(unsigned short, ushort2, 4)
EMU_VEC4(unsigned short, ushort4, 8)
EMU_VEC4(signed char, char4, 4)
EMU_VEC4(unsigned char, uchar4, 4)
EMU_VEC2(long long, longlong2, 16)
#undef EMU_VEC2
#undef EMU_VEC3
#undef EMU_VEC4

/* ---- built-in variables ----------------------------------------------------------------------- */
/* Read-only views of the TLS block (assigning to threadIdx is a compile error, as in CUDA). */
#define threadIdx (static_cast<const uint3&>(emu_builtins_tls.thread_idx))
#define blockIdx (static_cast<const uint3&>(emu_builtins_tls.block_idx))
#define blockDim (static_cast<const uint3&>(emu_builtins_tls.block_dim))
#define gridDim (static_cast<const uint3&>(emu_builtins_tls.grid_dim))
static constexpr int warpSize = 32;

/* ---- barriers --------------------------------------------------------------------------------- */
#define __syncthreads() ((void)::emu_barrier(EMU_BAR_SYNC, 1, __FILE__, __LINE__))
#define __syncthreads_count(pred) ::emu_barrier(EMU_BAR_COUNT, (pred) ? 1 : 0, __FILE__, __LINE__)
#define __syncthreads_and(pred) ::emu_barrier(EMU_BAR_AND, (pred) ? 1 : 0, __FILE__, __LINE__)
#define __syncthreads_or(pred) ::emu_barrier(EMU_BAR_OR, (pred) ? 1 : 0, __FILE__, __LINE__)

/* ---- warp operations -------------------------------------------------------------------------- */
namespace emu {
/* The types CUDA's __shfl_*_sync overloads accept (our 16-bit storage structs are not among them,
 * on purpose: shuffle the float or the bits, as NVRTC requires). */
template <class T>
inline constexpr bool is_shfl_type =
    std::is_same_v<T, int> || std::is_same_v<T, unsigned> || std::is_same_v<T, long> ||
    std::is_same_v<T, unsigned long> || std::is_same_v<T, long long> ||
    std::is_same_v<T, unsigned long long> || std::is_same_v<T, float> || std::is_same_v<T, double>;

template <class T>
inline T shfl(int kind, const char* file, int line, unsigned mask, T var, int arg, int width = 32) {
    static_assert(is_shfl_type<T>, "__shfl_*_sync: unsupported type (CUDA accepts int, unsigned, long, "
                                   "long long and their unsigned forms, float, double)");
    uint64_t bits = 0;
    memcpy(&bits, &var, sizeof(T));
    bits = ::emu_warp_op(kind, mask, bits, arg, width, file, line);
    T out;
    memcpy(&out, &bits, sizeof(T));
    return out;
}

inline void syncwarp(const char* file, int line, unsigned mask = 0xffffffffu) {
    (void)::emu_warp_op(EMU_SYNCWARP, mask, 0, 0, 32, file, line);
}
} // namespace emu

#define __shfl_sync(...) ::emu::shfl(EMU_SHFL_IDX, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) ::emu::shfl(EMU_SHFL_UP, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) ::emu::shfl(EMU_SHFL_DOWN, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(...) ::emu::shfl(EMU_SHFL_XOR, __FILE__, __LINE__, __VA_ARGS__)
#define __ballot_sync(mask, pred)                                                                 \
    ((unsigned)::emu_warp_op(EMU_BALLOT, (mask), (pred) ? 1u : 0u, 0, 32, __FILE__, __LINE__))
#define __any_sync(mask, pred) ((int)::emu_warp_op(EMU_ANY, (mask), (pred) ? 1u : 0u, 0, 32, __FILE__, __LINE__))
#define __all_sync(mask, pred) ((int)::emu_warp_op(EMU_ALL, (mask), (pred) ? 1u : 0u, 0, 32, __FILE__, __LINE__))
#define __syncwarp(...) ::emu::syncwarp(__FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)

/* Not emulated: which lanes are "active" depends on the GPU's convergence, which the emulator does
 * not model.  Using them is a compile error with a readable message instead of a silent guess. */
#define EMU_UNSUPPORTED(what)                                                                     \
    ([] {                                                                                         \
        static_assert(sizeof(int) == 0, what " is not supported by the CPU emulator; pass explicit masks"); \
        return 0u;                                                                                \
    }())
#define __activemask() EMU_UNSUPPORTED("__activemask()")
#define __match_any_sync(...) EMU_UNSUPPORTED("__match_any_sync")
#define __match_all_sync(...) EMU_UNSUPPORTED("__match_all_sync")

#define __trap() ::emu_trap(__FILE__, __LINE__)
#define __brkpt() ::emu_trap(__FILE__, __LINE__)

/* ---- memory fences and cached loads ----------------------------------------------------------- */
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldca(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline T __ldlu(const T* p) { return *p; }
template <class T> inline T __ldcv(const T* p) { return *p; }
template <class T> inline void __stwb(T* p, T v) { *p = v; }
template <class T> inline void __stcg(T* p, T v) { *p = v; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }
template <class T> inline void __stwt(T* p, T v) { *p = v; }

inline long long clock64() { return (long long)__builtin_ia32_rdtsc(); }

/* ---- atomics ---------------------------------------------------------------------------------- */
/* Relaxed, like CUDA's plain atomics; real atomics because blocks run on several OS threads.
 * The overload set is CUDA's: e.g. there is no atomicAdd(unsigned long*, ...), in either compiler. */
namespace emu {
template <class T, class F> inline T atomic_update(T* addr, F f) {
    T old = __atomic_load_n(addr, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(addr, &old, f(old), true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return old;
}
template <class T, class F> inline T atomic_update_float(T* addr, F f) {
    using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    Bits* p = reinterpret_cast<Bits*>(addr);
    Bits old = __atomic_load_n(p, __ATOMIC_RELAXED);
    for (;;) {
        T oldv = __builtin_bit_cast(T, old);
        Bits nv = __builtin_bit_cast(Bits, f(oldv));
        if (__atomic_compare_exchange_n(p, &old, nv, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return oldv;
    }
}
} // namespace emu

#define EMU_ATOMIC_INT_OPS(T)                                                                     \
    inline T atomicAdd(T* a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }          \
    inline T atomicExch(T* a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_RELAXED); }        \
    inline T atomicAnd(T* a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_RELAXED); }          \
    inline T atomicOr(T* a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_RELAXED); }            \
    inline T atomicXor(T* a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_RELAXED); }          \
    inline T atomicMin(T* a, T v) { return ::emu::atomic_update(a, [v](T o) { return o < v ? o : v; }); } \
    inline T atomicMax(T* a, T v) { return ::emu::atomic_update(a, [v](T o) { return o > v ? o : v; }); } \
    inline T atomicCAS(T* a, T cmp, T v) {                                                        \
        __atomic_compare_exchange_n(a, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);       \
        return cmp;                                                                               \
    }
EMU_ATOMIC_INT_OPS(int)
EMU_ATOMIC_INT_OPS(unsigned)
EMU_ATOMIC_INT_OPS(unsigned long long)
#undef EMU_ATOMIC_INT_OPS
inline int atomicSub(int* a, int v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }
inline unsigned atomicSub(unsigned* a, unsigned v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }
inline long long atomicMin(long long* a, long long v) {
    return ::emu::atomic_update(a, [v](long long o) { return o < v ? o : v; });
}
inline long long atomicMax(long long* a, long long v) {
    return ::emu::atomic_update(a, [v](long long o) { return o > v ? o : v; });
}
inline unsigned short atomicCAS(unsigned short* a, unsigned short cmp, unsigned short v) {
    __atomic_compare_exchange_n(a, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return cmp;
}
/* atomicInc/atomicDec wrap at `limit`, exactly as CUDA defines them. */
inline unsigned atomicInc(unsigned* a, unsigned limit) {
    return ::emu::atomic_update(a, [limit](unsigned o) { return o >= limit ? 0u : o + 1u; });
}
inline unsigned atomicDec(unsigned* a, unsigned limit) {
    return ::emu::atomic_update(a, [limit](unsigned o) { return (o == 0u || o > limit) ? limit : o - 1u; });
}
inline float atomicAdd(float* a, float v) { return ::emu::atomic_update_float(a, [v](float o) { return o + v; }); }
inline double atomicAdd(double* a, double v) {
    return ::emu::atomic_update_float(a, [v](double o) { return o + v; });
}
inline float atomicExch(float* a, float v) {
    return __builtin_bit_cast(float, __atomic_exchange_n(reinterpret_cast<uint32_t*>(a),
                                                         __builtin_bit_cast(uint32_t, v), __ATOMIC_RELAXED));
}
/* Scoped variants: a block and the whole system are one coherent memory here. */
#define EMU_SCOPED_ATOMIC(OP)                                                                     \
    template <class... A> inline auto OP##_block(A... a) { return OP(a...); }                     \
    template <class... A> inline auto OP##_system(A... a) { return OP(a...); }
EMU_SCOPED_ATOMIC(atomicAdd)
EMU_SCOPED_ATOMIC(atomicSub)
EMU_SCOPED_ATOMIC(atomicExch)
EMU_SCOPED_ATOMIC(atomicMin)
EMU_SCOPED_ATOMIC(atomicMax)
EMU_SCOPED_ATOMIC(atomicInc)
EMU_SCOPED_ATOMIC(atomicDec)
EMU_SCOPED_ATOMIC(atomicCAS)
EMU_SCOPED_ATOMIC(atomicAnd)
EMU_SCOPED_ATOMIC(atomicOr)
EMU_SCOPED_ATOMIC(atomicXor)
#undef EMU_SCOPED_ATOMIC

/* ---- bit casts and integer intrinsics --------------------------------------------------------- */
inline constexpr int __float_as_int(float x) { return __builtin_bit_cast(int, x); }
inline constexpr float __int_as_float(int x) { return __builtin_bit_cast(float, x); }
inline constexpr unsigned __float_as_uint(float x) { return __builtin_bit_cast(unsigned, x); }
inline constexpr float __uint_as_float(unsigned x) { return __builtin_bit_cast(float, x); }
inline constexpr long long __double_as_longlong(double x) { return __builtin_bit_cast(long long, x); }
inline constexpr double __longlong_as_double(long long x) { return __builtin_bit_cast(double, x); }
inline constexpr int __double2hiint(double x) { return (int)(__double_as_longlong(x) >> 32); }
inline constexpr int __double2loint(double x) { return (int)(unsigned)__double_as_longlong(x); }
inline constexpr double __hiloint2double(int hi, int lo) {
    return __longlong_as_double((long long)(((unsigned long long)(unsigned)hi << 32) | (unsigned)lo));
}

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    return __builtin_bswap32(x);
}
inline unsigned long long __brevll(unsigned long long x) {
    return ((unsigned long long)__brev((unsigned)x) << 32) | __brev((unsigned)(x >> 32));
}
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline long long __mul64hi(long long a, long long b) { return (long long)(((__int128)a * b) >> 64); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
inline int __mul24(int a, int b) { return (int)((unsigned)((a << 8) >> 8) * (unsigned)((b << 8) >> 8)); }
inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
    unsigned long long v = ((unsigned long long)y << 32) | x;
    unsigned r = 0;
    for (int i = 0; i < 4; ++i) r |= (unsigned)((v >> (((s >> (4 * i)) & 7u) * 8)) & 0xffu) << (8 * i);
    return r;
}
inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned shift) {
    return (unsigned)(((((unsigned long long)hi << 32) | lo) << (shift & 31u)) >> 32);
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned shift) {
    return (unsigned)((((unsigned long long)hi << 32) | lo) >> (shift & 31u));
}
inline unsigned __funnelshift_lc(unsigned lo, unsigned hi, unsigned shift) {
    return (unsigned)(((((unsigned long long)hi << 32) | lo) << (shift < 32u ? shift : 32u)) >> 32);
}
inline unsigned __funnelshift_rc(unsigned lo, unsigned hi, unsigned shift) {
    return (unsigned)((((unsigned long long)hi << 32) | lo) >> (shift < 32u ? shift : 32u));
}

/* ---- float math ------------------------------------------------------------------------------- */
/* The fast GPU intrinsics are computed at full precision here.  rsqrtf is routed through a macro
 * so that a C library which also declares rsqrtf (glibc >= 2.41, C23) cannot clash with ours. */
inline float emu_rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double emu_rsqrt(double x) { return 1.0 / sqrt(x); }
#define rsqrtf emu_rsqrtf
#define rsqrt emu_rsqrt
inline float rcbrtf(float x) { return 1.0f / cbrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return exp10f(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float* s, float* c) { sincosf(x, s, c); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; } /* NaN -> 0 */

/* Float -> integer conversions saturate and map NaN to 0, as the GPU's cvt instructions do. */
namespace emu {
template <class I> inline I sat_convert(double r) {
    if (r != r) return 0;
    if (r <= (double)std::numeric_limits<I>::min()) return std::numeric_limits<I>::min();
    if (r >= (double)std::numeric_limits<I>::max()) return std::numeric_limits<I>::max();
    return (I)r;
}
} // namespace emu
inline int __float2int_rn(float x) { return ::emu::sat_convert<int>(nearbyint((double)x)); }
inline int __float2int_rz(float x) { return ::emu::sat_convert<int>(trunc((double)x)); }
inline int __float2int_rd(float x) { return ::emu::sat_convert<int>(floor((double)x)); }
inline int __float2int_ru(float x) { return ::emu::sat_convert<int>(ceil((double)x)); }
inline unsigned __float2uint_rn(float x) { return ::emu::sat_convert<unsigned>(nearbyint((double)x)); }
inline unsigned __float2uint_rz(float x) { return ::emu::sat_convert<unsigned>(trunc((double)x)); }
inline long long __float2ll_rn(float x) { return ::emu::sat_convert<long long>(nearbyint((double)x)); }
inline long long __float2ll_rz(float x) { return ::emu::sat_convert<long long>(trunc((double)x)); }
inline float __int2float_rn(int x) { return (float)x; }
inline float __uint2float_rn(unsigned x) { return (float)x; }
inline float __ll2float_rn(long long x) { return (float)x; }
inline float __double2float_rn(double x) { return (float)x; }

/* CUDA's global min/max overloads (device code has no std::min). */
#define EMU_MINMAX(R, A, B)                                                                       \
    inline R min(A a, B b) { return (R)a < (R)b ? (R)a : (R)b; }                                  \
    inline R max(A a, B b) { return (R)a > (R)b ? (R)a : (R)b; }
EMU_MINMAX(int, int, int)
EMU_MINMAX(unsigned, unsigned, unsigned)
EMU_MINMAX(unsigned, int, unsigned)
EMU_MINMAX(unsigned, unsigned, int)
EMU_MINMAX(long, long, long)
EMU_MINMAX(unsigned long, unsigned long, unsigned long)
EMU_MINMAX(long long, long long, long long)
EMU_MINMAX(unsigned long long, unsigned long long, unsigned long long)
EMU_MINMAX(unsigned long long, long long, unsigned long long)
EMU_MINMAX(unsigned long long, unsigned long long, long long)
#undef EMU_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double min(float a, double b) { return fmin(a, b); }
inline double max(float a, double b) { return fmax(a, b); }
inline double min(double a, float b) { return fmin(a, b); }
inline double max(double a, float b) { return fmax(a, b); }

/* ---- dynamic shared memory (used by the prelude's DYN_SMEM) ----------------------------------- */
inline void* emu_dyn_smem() { return emu_builtins_tls.dyn_smem; }

/* ---- kernel export (used by the generated manifest TUs) --------------------------------------- */
namespace emu::detail {
template <class T> constexpr char sig_char() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_pointer_v<U>) return 'p';
    else if constexpr (std::is_same_v<U, bool>) return 'b';
    else if constexpr (std::is_same_v<U, float>) return 'f';
    else if constexpr (std::is_same_v<U, double>) return 'd';
    else if constexpr (std::is_enum_v<U>) return sig_char<std::underlying_type_t<U>>();
    else if constexpr (std::is_integral_v<U>) {
        constexpr bool s = std::is_signed_v<U>;
        if constexpr (sizeof(U) == 1) return s ? 'c' : 'C';
        else if constexpr (sizeof(U) == 2) return s ? 'h' : 'H';
        else if constexpr (sizeof(U) == 4) return s ? 'i' : 'u';
        else return s ? 'l' : 'L';
    } else return 'S';
}

template <class... A> struct KernelArgs {
    /* Unpacks void** args exactly like cuLaunchKernel: args[i] points at the i-th argument. */
    template <void (*K)(A...), size_t... I> static void call(void** args, std::index_sequence<I...>) {
        K(*static_cast<std::remove_cv_t<A>*>(args[I])...);
    }
    template <void (*K)(A...)> static void thunk(void** args) { call<K>(args, std::index_sequence_for<A...>{}); }
    static constexpr char signature[] = {sig_char<A>()..., '\0'};
    static constexpr uint32_t sizes[] = {(uint32_t)sizeof(A)..., 0u};
    static constexpr uint32_t aligns[] = {(uint32_t)alignof(A)..., 0u};
};
template <class... A> KernelArgs<A...> kernel_args_of(void (*)(A...));

template <auto K> int export_kernel(const char* name, const char* source) {
    using Args = decltype(kernel_args_of(K));
    emu_kernel_desc d;
    d.name = name;
    d.thunk = &Args::template thunk<K>;
    d.signature = Args::signature;
    d.num_params = (unsigned)(sizeof(Args::sizes) / sizeof(Args::sizes[0]) - 1);
    d.param_sizes = Args::sizes;
    d.param_aligns = Args::aligns;
    d.source = source;
    return emu_register_kernel(&d);
}
} // namespace emu::detail

/* EMU_EXPORT(name, "file.cu"): registers the extern "C" kernel `name` at library load. */
#define EMU_EXPORT(name, source)                                                                  \
    [[maybe_unused]] static const int emu_export_##name = ::emu::detail::export_kernel<&name>(#name, source);

#endif /* !EMU_SCAN */
#endif /* BLOCKDANCE_EMU_H */

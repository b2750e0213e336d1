// linear.cu - the epilogue of IOps.Linear: y = act(acc + bias), after cuBLAS has written acc = x·wᵀ.
//
// The GEMM itself is cuBLAS (cublasGemmEx, fp32 accumulation); this kernel adds the bias and applies the
// activation in one pass over the M×N output, in the candle/llm.c style "matmul, then a fused epilogue".
// `acc` is float32: for F32 activations it is y itself (in place, acc == y); for F16/BF16 it is a float32
// scratch the GEMM wrote, so the product is rounded to the storage type once, after bias and activation
// (as cuBLASLt's fused epilogue does), not twice.
//
// Launch (src/Kernels/CudaBackend/CudaOps.Linear.cs): 1-D grid-stride loop, 256 threads per block,
// grid = min(ceil(total / 256), 8 blocks per SM). Elementwise and memory-bound: 256 threads keep the block
// small enough for 8 resident blocks per SM (full occupancy) and the grid-stride loop lets the grid stop
// at one full wave instead of launching millions of blocks. Index math is 32-bit unsigned; the launcher
// guarantees total < 2^31, so i + stride cannot wrap.
//
// Activations (IOps.Activation): 0 none, 1 GELU-tanh, 2 SiLU, computed exactly as the CPU device does
// (src/Kernels/Cpu/CpuMath.cs): GELU-tanh as x / (1 + exp(-2u)), u = sqrt(2/pi)·(x + 0.044715·x³), which
// equals 0.5·x·(1 + tanh(u)); SiLU as x / (1 + exp(-x)). Full-precision expf (no fast math), so the only
// GPU/CPU difference is expf's last ulp and FMA contraction.
#include "prelude.cuh"

#define ACT_NONE 0
#define ACT_GELU_TANH 1
#define ACT_SILU 2

__device__ __forceinline__ float gelu_tanh(float x) {
    const float u = 0.7978845608028654f * (x + 0.044715f * (x * x * x));
    return x / (1.0f + expf(-2.0f * u));
}

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

// acc and y may be the same buffer (F32), so neither is __restrict__.
template <class T>
__device__ __forceinline__ void bias_act(const float* acc, const T* bias, T* y, unsigned total, unsigned n, int act) {
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        float v = acc[i];
        if (bias != nullptr) v += to_float(bias[i % n]);
        if (act == ACT_GELU_TANH) {
            v = gelu_tanh(v);
        } else if (act == ACT_SILU) {
            v = silu(v);
        }
        y[i] = from_float<T>(v);
    }
}

// acc: [total] float32 (total = M·N, row-major [M, N]); bias: [N] or null; y: [total].
#define BIAS_ACT(T, NAME)                                                                                \
    extern "C" __global__ void NAME(const float* acc, const T* bias, T* y, int total, int n, int act) {  \
        bias_act<T>(acc, bias, y, (unsigned)total, (unsigned)n, act);                                    \
    }

BIAS_ACT(float, bias_act_f32)
BIAS_ACT(f16, bias_act_f16)
BIAS_ACT(bf16, bias_act_bf16)

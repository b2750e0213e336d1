// adaln.cu - DiT's adaLN pieces: IOps.LayerNormModulate and IOps.GatedResidualAdd.
//
// layernorm_modulate_{dtype}: y[r,:] = LN(x[r,:])·(1 + scale[b,:]) + shift[b,:] for every row r = b·T + t,
// LayerNorm without affine parameters, biased variance, eps inside the square root. Two passes like the
// CPU device (CpuOps.LayerNormJob) and PyTorch: the mean first, then the mean of squared deviations (not
// E[x²] − mean², which cancels badly for rows with a large offset).
//   Launch: one block per row (grid = B·T), blockDim = min(256, D rounded up to a multiple of 32).
//   Each thread strides over the row; the two sums are block reductions (prelude block_reduce_sum: warp
//   shuffles, then one value per warp through 32 floats of static shared memory). A row of DiT is 384 to
//   1152 values, so 256 threads read 2-5 values each; smaller rows get fewer threads rather than idle
//   warps, and the multiple of 32 is what block_reduce_sum needs. The row is read three times (mean,
//   variance, output); the re-reads hit L1/L2 at these sizes, which keeps the kernel free of dynamic
//   shared memory and of any limit on D.
//
// gated_residual_add_{dtype}: x[r,:] += gate[b,:] ⊙ h[r,:] (one fused multiply-add, as the CPU's
// TensorPrimitives.FusedMultiplyAdd).
//   Launch: elementwise, 1-D grid-stride, 256 threads, grid = min(ceil(total / 256), 8 blocks per SM).
//
// mod is [B, chunks·D]; the launcher passes its row stride (chunks·D) and the element offsets of the
// chunks it needs (chunk·D). 32-bit indices: the launcher guarantees every tensor has < 2^31 elements.
#include "prelude.cuh"

template <class T>
__device__ __forceinline__ void layernorm_modulate(const T* x, const T* mod, T* y, int tokens, int d, int mod_stride,
                                                   int shift_off, int scale_off, float eps) {
    __shared__ float scratch[32];
    const unsigned row = blockIdx.x;
    const T* xr = x + (int64_t)row * d;
    T* yr = y + (int64_t)row * d;
    const T* m = mod + (int64_t)(row / (unsigned)tokens) * mod_stride;

    float sum = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) sum += to_float(xr[i]);
    const float mean = block_reduce_sum(sum, scratch) / (float)d;

    float squares = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        const float c = to_float(xr[i]) - mean;
        squares += c * c;
    }
    const float var = block_reduce_sum(squares, scratch) / (float)d;
    const float rstd = 1.0f / sqrtf(var + eps);

    // y may be x: each element is read and then written by the same thread, after both reductions.
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        const float normed = (to_float(xr[i]) - mean) * rstd;
        yr[i] = from_float<T>(normed * (1.0f + to_float(m[scale_off + i])) + to_float(m[shift_off + i]));
    }
}

template <class T>
__device__ __forceinline__ void gated_residual_add(T* x, const T* h, const T* mod, unsigned total, unsigned row_block,
                                                   unsigned d, int mod_stride, int gate_off) {
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const unsigned b = i / row_block;  // batch item (row_block = T·D elements)
        const float gate = to_float(mod[(int64_t)b * mod_stride + gate_off + i % d]);
        x[i] = from_float<T>(fmaf(gate, to_float(h[i]), to_float(x[i])));
    }
}

#define ADALN(T, SUFFIX)                                                                                   \
    extern "C" __global__ void layernorm_modulate_##SUFFIX(const T* x, const T* mod, T* y, int tokens, int d, \
                                                           int mod_stride, int shift_off, int scale_off,    \
                                                           float eps) {                                     \
        layernorm_modulate<T>(x, mod, y, tokens, d, mod_stride, shift_off, scale_off, eps);                \
    }                                                                                                      \
    extern "C" __global__ void gated_residual_add_##SUFFIX(T* x, const T* h, const T* mod, int total,       \
                                                           int row_block, int d, int mod_stride,            \
                                                           int gate_off) {                                  \
        gated_residual_add<T>(x, h, mod, (unsigned)total, (unsigned)row_block, (unsigned)d, mod_stride,     \
                              gate_off);                                                                   \
    }

ADALN(float, f32)
ADALN(f16, f16)
ADALN(bf16, bf16)

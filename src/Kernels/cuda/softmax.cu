// softmax.cu - the softmax of IOps.Attention: rows of float32 scores -> probabilities in the storage type.
//
// Attention on CUDA is two cuBLAS strided-batched GEMMs around this kernel (src/Kernels/Cuda/CudaOps.cs):
// scores[h, t, :] = scale·q_t·K_hᵀ in float32, then P = softmax over each row, then O_h = P·V_h. Scores stay
// float32 so that the row maximum and the exponentials see the full-precision logits; P is written in the
// storage type because it is the B operand of the second GEMM (whose A operand, V, is in that type).
//
// Numerically stable, like the CPU device (CpuOps.SoftmaxInPlace): subtract the row maximum, exponentiate
// (full-precision expf), multiply by 1/sum.
//
// Launch (CudaOps.Softmax.cs): one warp per row, 4 warps (128 threads) per block, grid = ceil(rows / 4).
// A row is at most a few thousand floats (T tokens), which one warp streams in coalesced 128-byte steps
// with a few values per lane; the max and the sum are warp butterflies (prelude warp_reduce_max/sum), so
// the kernel has no __syncthreads and no shared memory. A warp whose row is past the end returns as a
// whole, before any shuffle. The row is read three times (max, sum, output); the re-reads hit L1.
// probs may be scores itself (F32 runs in place): every element is read and then written by one lane.
#include "prelude.cuh"

template <class T>
__device__ __forceinline__ void softmax_rows(const float* scores, T* probs, int rows, int cols) {
    const int row = (int)(blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5));
    const int lane = (int)(threadIdx.x & 31u);
    if (row >= rows) return;  // uniform per warp
    const float* s = scores + (int64_t)row * cols;
    T* p = probs + (int64_t)row * cols;

    float mx = -__int_as_float(0x7f800000);  // -inf
    for (int j = lane; j < cols; j += 32) mx = fmaxf(mx, s[j]);
    mx = warp_reduce_max(mx);

    float sum = 0.0f;
    for (int j = lane; j < cols; j += 32) sum += expf(s[j] - mx);
    sum = warp_reduce_sum(sum);
    const float inv = 1.0f / sum;

    for (int j = lane; j < cols; j += 32) p[j] = from_float<T>(expf(s[j] - mx) * inv);
}

// scores: [rows, cols] float32; probs: [rows, cols] in T.
#define SOFTMAX(T, SUFFIX)                                                                               \
    extern "C" __global__ void softmax_##SUFFIX(const float* scores, T* probs, int rows, int cols) {     \
        softmax_rows<T>(scores, probs, rows, cols);                                                      \
    }

SOFTMAX(float, f32)
SOFTMAX(f16, f16)
SOFTMAX(bf16, bf16)

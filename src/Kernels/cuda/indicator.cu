// indicator.cu - IOps.RelativeL1, the indicator of the adaptive cache policies (BWCache, TeaCache, FBCache):
// per batch item b, r = Σ|x − ref| / Σ|ref| over the item's elements, then result[b] = (accumulate ? result[b] : 0)
// + weight·r. result is float32 [B] on the device, so a mean over several blocks is reduced here and the host
// downloads B floats once per step (src/Dit/Pipeline/SamplingRun.cs).
//
// Launch (CudaOps.Indicator.cs): one block of 256 threads per batch item (grid = B). Each thread strides over the
// item's elements accumulating both sums in float32, then two block reductions (prelude block_reduce_sum); thread 0
// writes. The order of the sums depends only on the item's element count and the block size, never on B, so every
// item gets the same value at any batch size (the per-image decisions of a batch-1 and a batch-64 run agree).
// 0/0 is 0 (identical all-zero tensors), x/0 is +inf. 32-bit indices: the launcher checks per_item < 2^31.
#include "prelude.cuh"

template <class T>
__device__ __forceinline__ void relative_l1(const T* x, const T* ref, float* result, int per_item, float weight,
                                            int accumulate) {
    __shared__ float scratch[32];
    const int64_t base = (int64_t)blockIdx.x * per_item;
    float diff = 0.0f, norm = 0.0f;
    for (int j = (int)threadIdx.x; j < per_item; j += (int)blockDim.x) {
        const float r = to_float(ref[base + j]);
        diff += fabsf(to_float(x[base + j]) - r);
        norm += fabsf(r);
    }
    diff = block_reduce_sum(diff, scratch);
    norm = block_reduce_sum(norm, scratch);
    if (threadIdx.x == 0) {
        const float ratio = norm > 0.0f ? diff / norm : (diff > 0.0f ? __int_as_float(0x7f800000) : 0.0f);
        result[blockIdx.x] = (accumulate ? result[blockIdx.x] : 0.0f) + weight * ratio;
    }
}

#define INDICATOR(T, SUFFIX)                                                                               \
    extern "C" __global__ void relative_l1_##SUFFIX(const T* x, const T* ref, float* result, int per_item,  \
                                                    float weight, int accumulate) {                        \
        relative_l1<T>(x, ref, result, per_item, weight, accumulate);                                      \
    }

INDICATOR(float, f32)
INDICATOR(f16, f16)
INDICATOR(bf16, bf16)

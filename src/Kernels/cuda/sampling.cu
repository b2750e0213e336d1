// sampling.cu - the per-step updates of the sampling loop: IOps.GuidanceCombine, IOps.DdimStep,
// IOps.AncestralStep. Each is a pointwise formula over the latent, written exactly as the CPU device
// (CpuOps) evaluates it in float32, so that the two differ only by FMA contraction on the GPU.
//
// guidance_combine_{dtype}: out = [cond_0..cond_{n-1}, uncond_0..uncond_{n-1}], each item C·H·W;
//     y[i] = u + scale·(k − u) for the first guided·H·W elements of an item, else k (k = cond, u = uncond).
//     Since the conditional half comes first, cond is out[i] and uncond is out[total + i] (total = n·C·H·W).
// ddim_step_{dtype}: x ← one DDIM update (IOps.DdimStep), ε from the first C channels of the model
//     output (item stride out_item = C'·H·W elements); rederive != 0 is the original DiT form
//     (x0 = A·x − B·ε; ε' = (A·x − x0)/B; x' = x0·C + D·ε' + E·z), 0 the diffusers form
//     (x0 = (x − B·ε)/A; x' = C·x0 + D·ε + E·z). noise may be null (then z = 0).
// ancestral_step_{dtype}: x ← x0 = A·x − B·ε; mean = C1·x0 + C2·x; f = (v+1)/2;
//     logσ² = f·MaxLog + (1−f)·MinLog; x' = mean + Nonzero·exp(½logσ²)·z, with ε and v the first and second
//     C channels of the model output; noise may be null (the last step: x' = mean).
//
// Launch (CudaOps.Sampling.cs): elementwise over the latent, 1-D grid-stride, 256 threads per block,
// grid = min(ceil(total / 256), 8 blocks per SM). The scalars arrive as float kernel parameters (no
// constant-memory upload, nothing to synchronize). 32-bit unsigned indices (total < 2^31, checked).
#include "prelude.cuh"

template <class T>
__device__ __forceinline__ void guidance_combine(const T* out, T* y, unsigned item, unsigned guided, float scale,
                                                 unsigned total) {
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const float k = to_float(out[i]);
        if (i % item < guided) {
            const float u = to_float(out[(int64_t)total + i]);
            y[i] = from_float<T>(u + scale * (k - u));
        } else {
            y[i] = out[i];
        }
    }
}

template <class T>
__device__ __forceinline__ void ddim_step(T* x, const T* out, const T* noise, unsigned item, unsigned out_item,
                                          float A, float B, float C, float D, float E, int rederive,
                                          unsigned total) {
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const float xv = to_float(x[i]);
        const float eps = to_float(out[(int64_t)(i / item) * out_item + i % item]);
        const float z = noise != nullptr ? to_float(noise[i]) : 0.0f;
        float r;
        if (rederive != 0) {
            const float x0 = A * xv - B * eps;
            const float eps2 = (A * xv - x0) / B;
            r = x0 * C + D * eps2 + E * z;
        } else {
            const float x0 = (xv - B * eps) / A;
            r = C * x0 + D * eps + E * z;
        }
        x[i] = from_float<T>(r);
    }
}

template <class T>
__device__ __forceinline__ void ancestral_step(T* x, const T* out, const T* noise, unsigned item, float A, float B,
                                               float C1, float C2, float min_log, float max_log, float nonzero,
                                               unsigned total) {
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t at = (int64_t)(i / item) * 2 * item + i % item;
        const float xv = to_float(x[i]), eps = to_float(out[at]), v = to_float(out[at + item]);
        const float x0 = A * xv - B * eps;
        const float mean = C1 * x0 + C2 * xv;
        const float frac = (v + 1.0f) / 2.0f;
        const float log_var = frac * max_log + (1.0f - frac) * min_log;
        x[i] = from_float<T>(noise == nullptr ? mean : mean + nonzero * expf(0.5f * log_var) * to_float(noise[i]));
    }
}

#define SAMPLING(T, SUFFIX)                                                                                \
    extern "C" __global__ void guidance_combine_##SUFFIX(const T* out, T* y, int item, int guided,          \
                                                         float scale, int total) {                         \
        guidance_combine<T>(out, y, (unsigned)item, (unsigned)guided, scale, (unsigned)total);             \
    }                                                                                                      \
    extern "C" __global__ void ddim_step_##SUFFIX(T* x, const T* out, const T* noise, int item, int out_item, \
                                                  float A, float B, float C, float D, float E, int rederive, \
                                                  int total) {                                             \
        ddim_step<T>(x, out, noise, (unsigned)item, (unsigned)out_item, A, B, C, D, E, rederive,           \
                     (unsigned)total);                                                                     \
    }                                                                                                      \
    extern "C" __global__ void ancestral_step_##SUFFIX(T* x, const T* out, const T* noise, int item, float A, \
                                                       float B, float C1, float C2, float min_log,         \
                                                       float max_log, float nonzero, int total) {          \
        ancestral_step<T>(x, out, noise, (unsigned)item, A, B, C1, C2, min_log, max_log, nonzero,          \
                          (unsigned)total);                                                                \
    }

SAMPLING(float, f32)
SAMPLING(f16, f16)
SAMPLING(bf16, bf16)

// embedding.cu - the DiT embeddings: IOps.AddPositionEmbedding, IOps.TimestepEmbedding, IOps.EmbeddingLookup.
//
// add_position_embedding_{dtype}: x[b, t, :] += pos[t, :]   (pos is [T, D], the same for every batch item).
// timestep_embedding_{dtype}:     y[b, :] = [cos(t_b·f_0..f_{half-1}) | sin(t_b·f_0..f_{half-1})],
//     f_i = exp(-ln(10⁴)·i / (half − shift)), evaluated exactly as the CPU device (CpuOps.TimestepFrequency)
//     and PyTorch do in float32: the product (float)-ln(10⁴)·i, then the division, then expf — so on the
//     emulator the frequencies are bit-identical, and on a GPU within expf's ulp. t is float32 (0..999).
// embedding_lookup_{dtype}:       y[b, :] = table[ids[b], :]; ids are int32 and the caller checks their
//     range on the host (IOps contract). A device-side id outside [0, V) must not read out of bounds, and
//     a kernel cannot throw: such a row is filled with NaN, which the model's output checks then report.
//
// Launch (CudaOps.Embedding.cs): all three are elementwise over their output (timestep: over B·half, each thread
// writing its cosine and sine), 1-D grid-stride, 256 threads per block, grid = min(ceil(total / 256),
// 8 blocks per SM). 32-bit unsigned indices; the launcher guarantees total < 2^31.
#include "prelude.cuh"

template <class T>
__device__ __forceinline__ void add_position_embedding(T* x, const T* pos, unsigned per_item, unsigned total) {
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride)
        x[i] = from_float<T>(to_float(x[i]) + to_float(pos[i % per_item]));
}

template <class T>
__device__ __forceinline__ void timestep_embedding(const float* t, T* y, unsigned half, int shift, unsigned total) {
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned o = blockIdx.x * blockDim.x + threadIdx.x; o < total; o += stride) {
        const unsigned b = o / half, i = o % half;
        const float freq = expf((-9.210340371976184f * (float)i) / (float)((int)half - shift));
        const float arg = t[b] * freq;
        y[(int64_t)b * 2 * half + i] = from_float<T>(cosf(arg));
        y[(int64_t)b * 2 * half + half + i] = from_float<T>(sinf(arg));
    }
}

template <class T>
__device__ __forceinline__ void embedding_lookup(const T* table, const int* ids, T* y, int vocab, unsigned d,
                                                 unsigned total) {
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned o = blockIdx.x * blockDim.x + threadIdx.x; o < total; o += stride) {
        const int id = ids[o / d];
        y[o] = (unsigned)id < (unsigned)vocab ? table[(int64_t)id * d + o % d]
                                              : from_float<T>(__int_as_float(0x7fc00000));  // NaN
    }
}

#define EMBEDDING(T, SUFFIX)                                                                               \
    extern "C" __global__ void add_position_embedding_##SUFFIX(T* x, const T* pos, int per_item, int total) { \
        add_position_embedding<T>(x, pos, (unsigned)per_item, (unsigned)total);                            \
    }                                                                                                      \
    extern "C" __global__ void timestep_embedding_##SUFFIX(const float* t, T* y, int half, int shift,      \
                                                           int total) {                                    \
        timestep_embedding<T>(t, y, (unsigned)half, shift, (unsigned)total);                               \
    }                                                                                                      \
    extern "C" __global__ void embedding_lookup_##SUFFIX(const T* table, const int* ids, T* y, int vocab,  \
                                                         int d, int total) {                               \
        embedding_lookup<T>(table, ids, y, vocab, (unsigned)d, (unsigned)total);                           \
    }

EMBEDDING(float, f32)
EMBEDDING(f16, f16)
EMBEDDING(bf16, bf16)

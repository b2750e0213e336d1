// rearrange.cu - Latte's token rearrangement between spatial and temporal blocks: IOps.SwapFrameTokenAxes.
//
// swap_frame_token_axes_{dtype}: y[b, q, p, d] = x[b, p, q, d]   x: [B, P, Q, D], y: [B, Q, P, D]
// With P = frames, Q = patch tokens it is einops '(b f) t d -> (b t) f d'; with P = tokens, Q = frames the
// way back. A pure permutation (bit-exact copy); y never overlaps x (the launcher checks).
//
// Launch (CudaOps.Rearrange.cs): one thread per *output* element, 1-D grid-stride loop, 256 threads
// per block, grid = min(ceil(total / 256), 8 blocks per SM). Consecutive threads handle consecutive d of one
// row, so both the writes and the reads are coalesced runs of D elements (a whole token vector moves as one
// piece: the permutation only reorders rows of D). No shared memory is needed for that.
// The launcher guarantees total < 2^31 (32-bit unsigned indices cannot wrap).
#include "prelude.cuh"

template <class T>
__device__ __forceinline__ void swap_frame_token_axes(const T* __restrict__ x, T* __restrict__ y, unsigned p,
                                                      unsigned q, unsigned d, unsigned total) {
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned o = blockIdx.x * blockDim.x + threadIdx.x; o < total; o += stride) {
        const unsigned e = o % d, row = o / d;              // row = (b·Q + j)·P + i of y
        const unsigned i = row % p, bj = row / p;
        const unsigned j = bj % q, b = bj / q;
        y[o] = x[(((b * p) + i) * q + j) * d + e];
    }
}

#define REARRANGE(T, SUFFIX)                                                                               \
    extern "C" __global__ void swap_frame_token_axes_##SUFFIX(const T* x, T* y, int p, int q, int d,       \
                                                              int total) {                                 \
        swap_frame_token_axes<T>(x, y, (unsigned)p, (unsigned)q, (unsigned)d, (unsigned)total);            \
    }

REARRANGE(float, f32)
REARRANGE(f16, f16)
REARRANGE(bf16, bf16)

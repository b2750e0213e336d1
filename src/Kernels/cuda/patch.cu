// patch.cu - DiT's patch layout: IOps.Patchify (im2col of the patch-embedding Conv2d, kernel = stride = p)
// and IOps.Unpatchify (the final layer's tokens back to an image, einsum nhwpqc->nchpwq).
//
// patchify_{dtype}:   cols[b, r·(W/p) + c, ch·p·p + i·p + j] = image[b, ch, r·p + i, c·p + j]
// unpatchify_{dtype}: image[b, ch, hi·p + i, wi·p + j] = x[b, hi·(W/p) + wi, (i·p + j)·C + ch]
// Both are pure permutations (bit-exact copies).
//
// Launch (CudaOps.Patch.cs): one thread per *output* element, 1-D grid-stride loop,
// 256 threads per block, grid = min(ceil(total / 256), 8 blocks per SM). Writes are coalesced and each
// thread computes its source index with a few 32-bit divisions; the reads are strided by at most p
// elements (patchify: rows of p contiguous values; unpatchify: C-strided). At DiT sizes (a 32×32×4 latent)
// this is a few thousand elements, so simplicity wins over a shared-memory transpose.
// The launcher guarantees total < 2^31 (32-bit unsigned indices cannot wrap).
#include "prelude.cuh"

template <class T>
__device__ __forceinline__ void patchify(const T* image, T* cols, unsigned channels, unsigned height, unsigned width,
                                         unsigned p, unsigned total) {
    const unsigned gw = width / p, tokens = (height / p) * gw, k = channels * p * p;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned o = blockIdx.x * blockDim.x + threadIdx.x; o < total; o += stride) {
        const unsigned row = o / k, e = o % k;              // row = b·T + t
        const unsigned b = row / tokens, t = row % tokens;
        const unsigned ch = e / (p * p), i = (e / p) % p, j = e % p;
        const unsigned y = (t / gw) * p + i, x = (t % gw) * p + j;
        cols[o] = image[(((int64_t)b * channels + ch) * height + y) * width + x];
    }
}

template <class T>
__device__ __forceinline__ void unpatchify(const T* tokens_in, T* image, unsigned channels, unsigned height,
                                           unsigned width, unsigned p, unsigned total) {
    const unsigned gw = width / p, tokens = (height / p) * gw, k = p * p * channels;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned o = blockIdx.x * blockDim.x + threadIdx.x; o < total; o += stride) {
        const unsigned x = o % width, y = (o / width) % height, plane = o / (width * height);  // plane = b·C + ch
        const unsigned ch = plane % channels, b = plane / channels;
        const unsigned t = (y / p) * gw + x / p, i = y % p, j = x % p;
        image[o] = tokens_in[((int64_t)b * tokens + t) * k + (i * p + j) * channels + ch];
    }
}

// image: [B, C, H, W]; cols / x: [B, (H/p)·(W/p), C·p·p]; total = B·C·H·W (the same for both).
#define PATCH(T, SUFFIX)                                                                                   \
    extern "C" __global__ void patchify_##SUFFIX(const T* image, T* cols, int channels, int height,        \
                                                 int width, int patch, int total) {                        \
        patchify<T>(image, cols, (unsigned)channels, (unsigned)height, (unsigned)width, (unsigned)patch,   \
                    (unsigned)total);                                                                      \
    }                                                                                                      \
    extern "C" __global__ void unpatchify_##SUFFIX(const T* x, T* image, int channels, int height,         \
                                                   int width, int patch, int total) {                      \
        unpatchify<T>(x, image, (unsigned)channels, (unsigned)height, (unsigned)width, (unsigned)patch,    \
                      (unsigned)total);                                                                    \
    }

PATCH(float, f32)
PATCH(f16, f16)
PATCH(bf16, bf16)

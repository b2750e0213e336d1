// Test kernels: warp shuffles and votes (native/tests/kernel_test.cpp).
#include "prelude.cuh"

// out[warp] = sum of the warp's 32 inputs, by butterfly (__shfl_xor_sync via warp_reduce_sum).
extern "C" __global__ void warp_sum_xor(const float* in, float* out) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const float s = warp_reduce_sum(in[i]);
    if ((threadIdx.x & 31u) == 0u) out[i / 32] = s;
}

// The same with __shfl_down_sync (only lane 0 ends with the total).
extern "C" __global__ void warp_sum_down(const float* in, float* out) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = in[i];
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    if ((threadIdx.x & 31u) == 0u) out[i / 32] = v;
}

// Every shuffle flavour with a given width and lane argument; ints so that results are exact.
// out has 4 * total entries: idx, up, down, xor.
extern "C" __global__ void shuffle_all(const int* in, int* out, int width, int arg) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int total = gridDim.x * blockDim.x;
    const int v = in[i];
    out[i] = __shfl_sync(0xffffffffu, v, arg, width);
    out[total + i] = __shfl_up_sync(0xffffffffu, v, (unsigned)arg, width);
    out[2 * total + i] = __shfl_down_sync(0xffffffffu, v, (unsigned)arg, width);
    out[3 * total + i] = __shfl_xor_sync(0xffffffffu, v, arg, width);
}

// 64-bit and double shuffles move all 8 bytes.
extern "C" __global__ void shuffle_wide(const long long* in, long long* out, double* dout) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    out[i] = __shfl_xor_sync(0xffffffffu, in[i], 1);
    dout[i] = __shfl_sync(0xffffffffu, (double)in[i] * 0.5, 0);
}

// Votes: out[3 * w + {0,1,2}] = ballot, any, all of (in[i] != 0) for warp w of the grid (warps are
// counted per block: blockDim.x need not be a multiple of 32).
extern "C" __global__ void warp_votes(const int* in, unsigned* out) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned w = blockIdx.x * ceil_div(blockDim.x, 32u) + threadIdx.x / 32u;
    const int p = in[i] != 0;
    const unsigned b = __ballot_sync(0xffffffffu, p);
    const int any = __any_sync(0xffffffffu, p);
    const int all = __all_sync(0xffffffffu, p);
    __syncwarp();
    if ((threadIdx.x & 31u) == 0u) {
        out[3 * w + 0] = b;
        out[3 * w + 1] = (unsigned)any;
        out[3 * w + 2] = (unsigned)all;
    }
}

// Two halves of a warp shuffle independently with disjoint masks at different sites (legal since
// Volta).  out[i] = value of the lane 1 above within the half (wrapping).
extern "C" __global__ void split_warp_shuffle(const int* in, int* out) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned lane = threadIdx.x & 31u;
    int v = in[i];
    if (lane < 16u) {
        v = __shfl_sync(0x0000ffffu, v, (int)((lane + 1u) & 15u));
    } else {
        v = __shfl_sync(0xffff0000u, v, (int)(16u + ((lane + 1u) & 15u)));
    }
    out[i] = v;
}

// Test kernels: built-in indices, parameters, module globals (native/tests/kernel_test.cpp and
// driver_test.cpp).
#include "prelude.cuh"

// One entry per thread of a 3-D grid of 3-D blocks: {threadIdx, blockIdx, blockDim, gridDim}.
extern "C" __global__ void record_indices(unsigned* out) {
    const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    unsigned* o = out + 12u * (block * blockDim.x * blockDim.y * blockDim.z + thread);
    o[0] = threadIdx.x; o[1] = threadIdx.y; o[2] = threadIdx.z;
    o[3] = blockIdx.x; o[4] = blockIdx.y; o[5] = blockIdx.z;
    o[6] = blockDim.x; o[7] = blockDim.y; o[8] = blockDim.z;
    o[9] = gridDim.x; o[10] = gridDim.y; o[11] = gridDim.z;
}

struct Pair {
    int a;
    float b;
};

// Every parameter kind once; writes them back so that a test can check the unpacking.
extern "C" __global__ void all_param_kinds(double* out, int i, unsigned u, long long l, unsigned long long ul, float f,
                                           double d, short h, unsigned char c, bool b, Pair s, float4 v) {
    out[0] = i; out[1] = u; out[2] = (double)l; out[3] = (double)ul; out[4] = f; out[5] = d;
    out[6] = h; out[7] = c; out[8] = b ? 1.0 : 0.0; out[9] = s.a; out[10] = s.b;
    out[11] = v.x; out[12] = v.y; out[13] = v.z; out[14] = v.w;
}

extern "C" __global__ void no_params() {}

__constant__ float emu_test_scale[4];

// x[i] *= emu_test_scale[i % 4]; the constants are set through cuModuleGetGlobal_v2.
extern "C" __global__ void scale_by_constant(float* x, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= emu_test_scale[i % 4];
}

// Macro-generated entry points, the way op families produce {op}_{dtype} kernels.
#define DEFINE_FILL(NAME, T)                                                                       \
    extern "C" __global__ void NAME(T* out, float value, int n) {                                  \
        const int i = blockIdx.x * blockDim.x + threadIdx.x;                                       \
        if (i < n) out[i] = from_float<T>(value);                                                  \
    }
DEFINE_FILL(fill_f32, float)
DEFINE_FILL(fill_bf16, bf16)
DEFINE_FILL(fill_f16, f16)

// Busy loop for timing tests: out[i] = sum of 'iters' terms.
extern "C" __global__ void spin(float* out, int iters) {
    float acc = 0.0f;
    for (int k = 0; k < iters; ++k) acc += __sinf((float)k * 1e-3f);
    out[blockIdx.x * blockDim.x + threadIdx.x] = acc;
}

// out[global thread id] = the order in which the thread ran (barrier-free: direct mode).
extern "C" __global__ void take_ticket(unsigned* counter, unsigned* out) {
    out[blockIdx.x * blockDim.x + threadIdx.x] = atomicAdd(counter, 1u);
}

// Test kernels: 16-bit float conversions (native/tests/kernel_test.cpp).
#include "prelude.cuh"

// For every 16-bit pattern i: bf16 -> float -> bf16 and f16 -> float -> f16.
extern "C" __global__ void roundtrip_16bit(unsigned short* bf_out, float* bf_float, unsigned short* h_out, float* h_float) {
    const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= 65536u) return;
    bf16 b;
    b.bits = (unsigned short)i;
    const float fb = to_float(b);
    bf_float[i] = fb;
    bf_out[i] = from_float<bf16>(fb).bits;
    f16 h;
    h.bits = (unsigned short)i;
    const float fh = to_float(h);
    h_float[i] = fh;
    h_out[i] = from_float<f16>(fh).bits;
}

// Narrowing of arbitrary floats (given as bit patterns).
extern "C" __global__ void narrow_floats(const unsigned* in, unsigned short* bf_out, unsigned short* h_out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float f = __uint_as_float(in[i]);
    bf_out[i] = from_float<bf16>(f).bits;
    h_out[i] = from_float<f16>(f).bits;
}

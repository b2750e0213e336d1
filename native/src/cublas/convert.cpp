// The only TU of libcublas_emu.so that sees the kernel language: it borrows the prelude's
// conversions (RNE, canonical NaN) instead of keeping a second copy of them.
#include "emu.h"
#include "prelude.cuh"

#include "cublas/convert.h"

namespace emu::blas {

void half_to_float(Half type, const void* src, size_t count, float* dst) {
    if (type == Half::BF16) {
        const bf16* s = static_cast<const bf16*>(src);
        for (size_t i = 0; i < count; ++i) dst[i] = to_float(s[i]);
    } else {
        const f16* s = static_cast<const f16*>(src);
        for (size_t i = 0; i < count; ++i) dst[i] = to_float(s[i]);
    }
}

void float_to_half(Half type, const float* src, size_t count, void* dst) {
    if (type == Half::BF16) {
        bf16* d = static_cast<bf16*>(dst);
        for (size_t i = 0; i < count; ++i) d[i] = from_float<bf16>(src[i]);
    } else {
        f16* d = static_cast<f16*>(dst);
        for (size_t i = 0; i < count; ++i) d[i] = from_float<f16>(src[i]);
    }
}

} // namespace emu::blas

// fp16/bf16 <-> fp32 conversion of contiguous arrays for the cuBLAS surface.  Implemented with the
// project prelude's to_float/from_float, so the GEMMs round exactly like the kernels do.
#pragma once

#include <cstddef>

namespace emu::blas {

enum class Half { F16, BF16 };

void half_to_float(Half type, const void* src, size_t count, float* dst);
void float_to_half(Half type, const float* src, size_t count, void* dst);

} // namespace emu::blas

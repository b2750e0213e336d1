// Recognises the module images cuModuleLoadData receives (PTX text, CUBIN, fatbinary) and lists the
// kernels they define, so that the emulator resolves exactly the names a GPU would.
#pragma once

#include <string>
#include <vector>

namespace emu::cuda {

struct ModuleImage {
    enum class Kind { Ptx, Cubin, Fatbin } kind = Kind::Ptx;
    bool names_known = false;         // false for fatbinaries (not unpacked): any registered name resolves
    std::vector<std::string> entries; // kernel entry points when names_known
    int arch = 0;                     // sm_XY as XY from a CUBIN's e_flags or PTX's .target, 0 if unknown
};

// Returns CUDA_SUCCESS, or CUDA_ERROR_INVALID_IMAGE / CUDA_ERROR_NO_BINARY_FOR_GPU /
// CUDA_ERROR_INVALID_PTX with a message.  `device_arch` is the emulated device's sm (90).
int parse_module_image(const void* image, int device_arch, ModuleImage* out, std::string* error);

} // namespace emu::cuda

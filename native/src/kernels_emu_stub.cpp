// libkernels_emu.so holds every src/Kernels/cuda/*.cu compiled for the CPU emulator (one generated
// manifest per file, see cmake/EmuKernels.cmake).  This file only guarantees that the library exists
// and is valid when there are no kernel files yet.
extern "C" __attribute__((visibility("default"))) int emu_kernels_library_version(void) { return 1; }

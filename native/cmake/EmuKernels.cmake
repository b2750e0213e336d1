# EmuKernels.cmake - compile CUDA kernel files (.cu) with g++ for the CPU emulator.
#
#   emu_add_kernels(<target> <file.cu>...)
#
# For each .cu, a custom command preprocesses it with -DEMU_SCAN, and tools/emu_manifest.cmake writes
# <build>/emu_manifests/<target>/<name>.emu.cpp: the .cu itself plus one EMU_EXPORT per
# extern "C" __global__ kernel.  The manifests are added to <target>, compiled with emu.h pre-included
# (the kernel language) and the project prelude on the include path.  Kernel TUs see nothing else:
# the .cu files stay exactly what NVRTC compiles.
#
# Uses: EMU_INCLUDE_DIR (native/include), EMU_PRELUDE_DIR (src/Kernels/cuda), EMU_REPO_ROOT,
#       EMU_MANIFEST_SCRIPT, EMU_KERNEL_WARNINGS.

function(emu_add_kernels target)
  set(gen_dir "${CMAKE_CURRENT_BINARY_DIR}/emu_manifests/${target}")
  file(MAKE_DIRECTORY "${gen_dir}")
  set(emu_h "${EMU_INCLUDE_DIR}/emu.h")
  set(deps "${emu_h}" "${EMU_INCLUDE_DIR}/emu_abi.h" "${EMU_PRELUDE_DIR}/prelude.cuh" "${EMU_MANIFEST_SCRIPT}")

  foreach(cu IN LISTS ARGN)
    get_filename_component(cu "${cu}" ABSOLUTE)
    get_filename_component(stem "${cu}" NAME_WE)
    file(RELATIVE_PATH source_name "${EMU_REPO_ROOT}" "${cu}")
    set(scan "${gen_dir}/${stem}.scan.ii")
    set(manifest "${gen_dir}/${stem}.emu.cpp")
    add_custom_command(
      OUTPUT "${manifest}"
      COMMAND "${CMAKE_CXX_COMPILER}" -std=c++20 -E -DEMU_SCAN -include "${emu_h}" -I "${EMU_PRELUDE_DIR}"
              -x c++ "${cu}" -o "${scan}"
      COMMAND "${CMAKE_COMMAND}" "-DINPUT=${scan}" "-DSOURCE=${cu}" "-DSOURCE_NAME=${source_name}"
              "-DOUTPUT=${manifest}" -P "${EMU_MANIFEST_SCRIPT}"
      DEPENDS "${cu}" ${deps}
      COMMENT "Exporting the kernels of ${source_name}"
      VERBATIM)
    target_sources(${target} PRIVATE "${manifest}")
    set_source_files_properties("${manifest}" TARGET_DIRECTORY ${target} PROPERTIES
      OBJECT_DEPENDS "${cu};${deps}"
      COMPILE_OPTIONS "-include;${emu_h};-I${EMU_PRELUDE_DIR};-fmacro-prefix-map=${EMU_REPO_ROOT}/=;${EMU_KERNEL_WARNINGS}")
  endforeach()

  target_include_directories(${target} PRIVATE "${EMU_INCLUDE_DIR}")
  target_link_libraries(${target} PRIVATE emu_rt)
endfunction()

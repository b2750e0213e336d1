# emu_manifest.cmake - writes the registration TU for one kernel file.
#
#   cmake -DINPUT=<X.cu preprocessed with -DEMU_SCAN> -DSOURCE=<X.cu> -DSOURCE_NAME=<name in messages>
#         -DOUTPUT=<X.emu.cpp> -P emu_manifest.cmake
#
# The input is the kernel file after `g++ -E -DEMU_SCAN -include emu.h`, where `__global__` survives as
# the marker `__emu_global__` and macro-generated kernels are already expanded.  Every marker must
# belong to a declaration of the form   extern "C" __global__ void NAME(   (launch bounds may sit in
# between; they expand to nothing); anything else (a template or C++-linkage kernel) is an error,
# because the emulator could not find it by its cuModuleGetFunction name.
#
# Output:  #include "X.cu"  followed by one  EMU_EXPORT(NAME, "SOURCE_NAME")  per kernel.

foreach(var INPUT SOURCE SOURCE_NAME OUTPUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "emu_manifest.cmake: -D${var}=... is required")
  endif()
endforeach()

file(READ "${INPUT}" text)

set(ws "[ \t\r\n]")
string(REGEX MATCHALL "__emu_global__" markers "${text}")
list(LENGTH markers marker_count)
string(REGEX MATCHALL "extern${ws}+\"C\"${ws}+__emu_global__${ws}+void${ws}+[A-Za-z_][A-Za-z0-9_]*${ws}*\\("
       decls "${text}")
list(LENGTH decls decl_count)

if(NOT marker_count EQUAL decl_count)
  math(EXPR bad "${marker_count} - ${decl_count}")
  message(FATAL_ERROR
    "${SOURCE_NAME}: ${bad} __global__ function(s) are not declared as  extern \"C\" __global__ void NAME(...).\n"
    "The CPU emulator (and cuModuleGetFunction) finds kernels by their extern \"C\" name; wrap templates in "
    "extern \"C\" entry points (see native/README.md, 'Writing kernels').")
endif()

set(names "")
foreach(decl IN LISTS decls)
  string(REGEX REPLACE ".*void${ws}+([A-Za-z_][A-Za-z0-9_]*)${ws}*\\($" "\\1" name "${decl}")
  list(APPEND names "${name}")
endforeach()
list(REMOVE_DUPLICATES names) # a forward declaration and the definition name the same kernel

set(out "// Generated from ${SOURCE_NAME} by native/tools/emu_manifest.cmake - do not edit.\n")
string(APPEND out "#include \"${SOURCE}\"\n\n")
foreach(name IN LISTS names)
  string(APPEND out "EMU_EXPORT(${name}, \"${SOURCE_NAME}\")\n")
endforeach()

# Rewrite only on change, so that an unrelated edit does not recompile the manifest.
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
  if(old STREQUAL out)
    return()
  endif()
endif()
file(WRITE "${OUTPUT}" "${out}")

# check_exports.cmake - the emulator libraries export exactly NVIDIA's entry-point names (nm -D), so
# that the C# bindings can load either the real libraries or these.
#
#   cmake -DNM=<nm> -DCUDA_LIB=<libcuda_emu.so> -DCUBLAS_LIB=<libcublas_emu.so> -P check_exports.cmake

cmake_minimum_required(VERSION 3.20)

set(cuda_required
  # initialisation, devices
  cuInit cuDriverGetVersion cuDeviceGetCount cuDeviceGet cuDeviceGetName cuDeviceGetAttribute
  cuDeviceTotalMem_v2 cuDeviceComputeCapability
  # contexts
  cuDevicePrimaryCtxRetain cuDevicePrimaryCtxRelease_v2 cuDevicePrimaryCtxReset_v2 cuDevicePrimaryCtxGetState
  cuDevicePrimaryCtxSetFlags_v2 cuCtxCreate_v2 cuCtxDestroy_v2 cuCtxSetCurrent cuCtxGetCurrent
  cuCtxPushCurrent_v2 cuCtxPopCurrent_v2 cuCtxGetDevice cuCtxSynchronize
  # modules, functions, launches
  cuModuleLoadData cuModuleLoadDataEx cuModuleUnload cuModuleGetFunction cuModuleGetGlobal_v2
  cuFuncSetAttribute cuFuncGetAttribute cuOccupancyMaxActiveBlocksPerMultiprocessor cuLaunchKernel
  # memory
  cuMemAlloc_v2 cuMemFree_v2 cuMemAllocAsync cuMemFreeAsync cuMemGetInfo_v2 cuMemAllocHost_v2 cuMemHostAlloc
  cuMemFreeHost cuMemcpyHtoD_v2 cuMemcpyDtoH_v2 cuMemcpyDtoD_v2 cuMemcpyHtoDAsync_v2 cuMemcpyDtoHAsync_v2
  cuMemcpyDtoDAsync_v2 cuMemsetD8_v2 cuMemsetD16_v2 cuMemsetD32_v2 cuMemsetD8Async cuMemsetD16Async
  cuMemsetD32Async
  # streams, events, errors
  cuStreamCreate cuStreamCreateWithPriority cuStreamDestroy_v2 cuStreamSynchronize cuStreamQuery
  cuStreamWaitEvent cuEventCreate cuEventDestroy_v2 cuEventRecord cuEventSynchronize cuEventQuery
  cuEventElapsedTime cuGetErrorName cuGetErrorString
  # emulator control
  emu_set_threads emu_get_threads emu_set_schedule emu_get_schedule emu_last_error emu_kernel_signature
  emu_kernel_list emu_get_counters emu_reset_counters emu_launch_count)

# Pre-_v2 entry points keep their old ABI in NVIDIA's libcuda.so.1 (e.g. cuMemAlloc takes a 32-bit
# CUdeviceptr).  The emulator must not export them, so that a binding using one fails to load here
# instead of misbehaving on a GPU.
set(cuda_forbidden
  cuMemAlloc cuMemFree cuMemGetInfo cuMemAllocHost cuMemcpyHtoD cuMemcpyDtoH cuMemcpyDtoD cuMemcpyHtoDAsync
  cuMemcpyDtoHAsync cuMemcpyDtoDAsync cuMemsetD8 cuMemsetD16 cuMemsetD32 cuStreamDestroy cuEventDestroy
  cuCtxCreate cuCtxDestroy cuCtxPushCurrent cuCtxPopCurrent cuDevicePrimaryCtxRelease cuDevicePrimaryCtxReset
  cuDeviceTotalMem cuModuleGetGlobal)

set(cublas_required
  cublasCreate_v2 cublasDestroy_v2 cublasGetVersion_v2 cublasSetStream_v2 cublasGetStream_v2
  cublasSetWorkspace_v2 cublasSetMathMode cublasGetMathMode cublasSetPointerMode_v2 cublasGetPointerMode_v2
  cublasGemmEx cublasGemmStridedBatchedEx cublasSgemm_v2 cublasGetStatusName cublasGetStatusString)
set(cublas_forbidden cublasCreate cublasDestroy cublasSetStream cublasSgemm cublasSetWorkspace)

set(failures "")

function(check lib required forbidden prefixes)
  execute_process(COMMAND "${NM}" -D --defined-only "${lib}" OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    set(failures "${failures}\n  nm -D failed on ${lib}" PARENT_SCOPE)
    return()
  endif()
  string(REPLACE "\n" ";" lines "${out}")
  set(functions "")
  foreach(line IN LISTS lines)
    if(line MATCHES "^[0-9a-f]+ T ([A-Za-z_][A-Za-z0-9_]*)$")
      list(APPEND functions "${CMAKE_MATCH_1}")
    endif()
  endforeach()
  set(f "")
  foreach(name IN LISTS required)
    if(NOT name IN_LIST functions)
      string(APPEND f "\n  ${lib}: missing ${name}")
    endif()
  endforeach()
  foreach(name IN LISTS forbidden)
    if(name IN_LIST functions)
      string(APPEND f "\n  ${lib}: exports the legacy entry point ${name}")
    endif()
  endforeach()
  # Nothing else leaks out (per-thread-default-stream variants, C++ internals).
  foreach(name IN LISTS functions)
    if(name MATCHES "_pt[sd]z?$")
      string(APPEND f "\n  ${lib}: exports the per-thread-stream variant ${name}")
    endif()
    set(ok FALSE)
    foreach(prefix IN LISTS prefixes)
      if(name MATCHES "^${prefix}")
        set(ok TRUE)
      endif()
    endforeach()
    if(NOT ok)
      string(APPEND f "\n  ${lib}: unexpected exported function ${name}")
    endif()
  endforeach()
  list(LENGTH functions n)
  message(STATUS "${lib}: ${n} exported functions checked")
  set(failures "${failures}${f}" PARENT_SCOPE)
endfunction()

check("${CUDA_LIB}" "${cuda_required}" "${cuda_forbidden}" "cu;emu_")
check("${CUBLAS_LIB}" "${cublas_required}" "${cublas_forbidden}" "cublas")

if(failures)
  message(FATAL_ERROR "exported symbol check failed:${failures}")
endif()
message(STATUS "exported symbols match the CUDA driver / cuBLAS names")

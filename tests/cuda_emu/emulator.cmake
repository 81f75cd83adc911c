# emulator.cmake — included by the top-level CMakeLists.txt when UNET_CUDA_EMULATOR is ON: builds
# `unet_cuda` from kernels/cuda/*.cu compiled as C++ against tests/cuda_emu/include (the CUDA
# runtime, cuBLAS, cuDNN and NCCL as CPU code), so `unet2022-check gpu-check-ops` runs without a GPU.
set(EMU_DIR ${PROJECT_SOURCE_DIR}/tests/cuda_emu)
file(GLOB EMU_CUDA_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/kernels/cuda/*.cu)
set(EMU_GENERATED)
foreach(cu ${EMU_CUDA_SOURCES})
  get_filename_component(name ${cu} NAME_WE)
  set(out ${CMAKE_BINARY_DIR}/cuda_emu/${name}.cpp)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DIN=${cu} -DOUT=${out} -P ${EMU_DIR}/rewrite.cmake
    DEPENDS ${cu} ${EMU_DIR}/rewrite.cmake VERBATIM)
  list(APPEND EMU_GENERATED ${out})
endforeach()
add_library(unet_cuda STATIC ${EMU_GENERATED} ${EMU_DIR}/emu_runtime.cpp ${EMU_DIR}/emu_libs.cpp)
target_compile_features(unet_cuda PRIVATE cxx_std_20)
# No FMA contraction: the GPU's __fadd_rn/__fmul_rn paths must stay separately rounded.
target_compile_options(unet_cuda PRIVATE -O3 -march=${UNET_CPU_ARCH} -ffp-contract=off)
# Fibers switch stacks with _longjmp, which a fortified build would take for stack corruption.
set_source_files_properties(${EMU_DIR}/emu_runtime.cpp PROPERTIES COMPILE_OPTIONS "-U_FORTIFY_SOURCE;-D_FORTIFY_SOURCE=0")
target_include_directories(unet_cuda BEFORE PUBLIC ${EMU_DIR}/include)
target_include_directories(unet_cuda PUBLIC ${PROJECT_SOURCE_DIR}/kernels/cuda)
target_link_libraries(unet_cuda PUBLIC unet_base ${BLAS_LIBRARIES})
if(UNET_WITH_MPI) # several NCCL ranks run over MPI (emu_libs.cpp)
  target_link_libraries(unet_cuda PUBLIC MPI::MPI_C)
  target_compile_definitions(unet_cuda PRIVATE UNET_HAVE_MPI=1) # emu_libs.cpp's #ifdef (unet_comm's is not seen here)
endif()
target_compile_definitions(unet_cuda PUBLIC UNET_HAVE_CUDA=1 UNET_CUDA_EMULATOR=1)
# The CUDA-aware targets (the NCCL transport, the commands) see the emulator's headers instead of
# the toolkit's: unet_cuda_aware() in the top-level CMakeLists.txt.

# bf16_check: the bf16 conversions of include/cuda_bf16.h and cublasGemmEx on bf16 operands,
# compared with torch by tests/cuda_emu/test_bf16.py (the ctest emu_bf16_rounding, registered in
# tests/CMakeLists.txt). Built from the shim sources alone (not unet_cuda, so not the kernels),
# and with unet_cuda so that `--target unet2022` (scripts/test.sh) builds it too.
add_executable(emu_bf16_check ${EMU_DIR}/bf16_check.cpp ${EMU_DIR}/emu_libs.cpp)
target_compile_features(emu_bf16_check PRIVATE cxx_std_20)
target_compile_options(emu_bf16_check PRIVATE -O2 -ffp-contract=off)
target_include_directories(emu_bf16_check BEFORE PRIVATE ${EMU_DIR}/include)
target_link_libraries(emu_bf16_check PRIVATE ${BLAS_LIBRARIES})
set_target_properties(emu_bf16_check PROPERTIES OUTPUT_NAME bf16_check RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/cuda_emu)
add_dependencies(unet_cuda emu_bf16_check)

# capture_check: the emulator's stream capture and graph replay against the real runtime's rules
# (the ctest emu_capture_rules, tests/CMakeLists.txt). Built from the runtime alone.
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/cuda_emu/capture_check.cpp
  COMMAND ${CMAKE_COMMAND} -DIN=${EMU_DIR}/capture_check.cpp -DOUT=${CMAKE_BINARY_DIR}/cuda_emu/capture_check.cpp
          -P ${EMU_DIR}/rewrite.cmake
  DEPENDS ${EMU_DIR}/capture_check.cpp ${EMU_DIR}/rewrite.cmake VERBATIM)
add_executable(emu_capture_check ${CMAKE_BINARY_DIR}/cuda_emu/capture_check.cpp ${EMU_DIR}/emu_runtime.cpp)
target_compile_features(emu_capture_check PRIVATE cxx_std_20)
target_compile_options(emu_capture_check PRIVATE -O1)
target_include_directories(emu_capture_check BEFORE PRIVATE ${EMU_DIR}/include)
set_target_properties(emu_capture_check PROPERTIES OUTPUT_NAME capture_check
                      RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/cuda_emu)
add_dependencies(unet_cuda emu_capture_check)

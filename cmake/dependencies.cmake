# Every external dependency is found here, once. All come from Debian 12's packages
# (launch/install-deps.sh); CUDA, cuBLAS and NCCL only when the CUDA backend is built.
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
find_package(GTest CONFIG REQUIRED)
find_package(MPI REQUIRED COMPONENTS C)
find_package(BLAS REQUIRED)
# Boost.Beast and Asio (header-only) serve HTTP; OpenSSL gives it TLS.
find_package(Boost 1.81 CONFIG REQUIRED COMPONENTS headers)
find_package(OpenSSL REQUIRED)

# PCRE2 (regex pre-tokenizers, JIT) and utf8proc (Unicode normalization) for the tokenizer.
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)

# OpenBLAS's cblas.h lives in the multiarch include dir on Debian.
find_path(CBLAS_INCLUDE_DIR cblas.h PATHS /usr/include/x86_64-linux-gnu /usr/include/openblas)
find_library(OPENBLAS_LIBRARY NAMES openblas)
if(NOT CBLAS_INCLUDE_DIR OR NOT OPENBLAS_LIBRARY)
  message(FATAL_ERROR "OpenBLAS (libopenblas-dev) not found: run launch/install-deps.sh")
endif()

find_program(MPIEXEC_BIN NAMES mpirun mpiexec REQUIRED)

set(PAGEDLLM_WITH_CUDA OFF)
if(NOT PAGEDLLM_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(CMAKE_CUDA_RUNTIME_LIBRARY Static)
    set(PAGEDLLM_WITH_CUDA ON)
    # NCCL has no CMake package; the CUDA toolkit's copy is found first.
    get_filename_component(PAGEDLLM_CUDA_ROOT "${CUDAToolkit_BIN_DIR}" DIRECTORY)
    find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${PAGEDLLM_CUDA_ROOT}/include)
    find_library(NCCL_LIBRARY NAMES nccl HINTS ${PAGEDLLM_CUDA_ROOT}/lib ${PAGEDLLM_CUDA_ROOT}/lib64
                 ${CUDAToolkit_LIBRARY_DIR})
    if(NOT NCCL_INCLUDE_DIR OR NOT NCCL_LIBRARY)
      message(FATAL_ERROR "NCCL (nccl.h, libnccl) not found next to the CUDA toolkit")
    endif()
    message(STATUS "pagedllm: NCCL ${NCCL_LIBRARY}")
  elseif(PAGEDLLM_CUDA STREQUAL "ON")
    message(FATAL_ERROR "PAGEDLLM_CUDA=ON but no CUDA compiler (nvcc) was found")
  endif()
endif()
message(STATUS "pagedllm: CUDA backend ${PAGEDLLM_WITH_CUDA}")

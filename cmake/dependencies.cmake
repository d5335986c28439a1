# Third-party packages. Everything comes from Debian 12 (see scripts/install-deps.sh) or, on GPU
# machines, from a Python PyTorch's LibTorch (CMAKE_PREFIX_PATH=$(python -c 'import torch;print(torch.utils.cmake_prefix_path)')).
find_package(Torch REQUIRED)
# PyTorch >= 2.5 wheels export the std::filesystem functions of a statically linked libstdc++
# (pytorch/pytorch#133437). A binary that lists libtorch before libstdc++ binds e.g.
# std::filesystem::remove_all to that copy, which crashed (SIGSEGV at address 0) with the pip
# LibTorch 2.11 on the GPU machine. Putting the system libstdc++ ahead of LibTorch on every link
# line makes its definitions win; Debian's LibTorch 1.13 does not need it.
if(Torch_VERSION VERSION_GREATER_EQUAL 2.5)
  list(PREPEND TORCH_LIBRARIES stdc++)
endif()
# c10d's Gloo process group (multi-process training, core/train/data_parallel.h): compiled into
# Debian's libtorch_cpu and PyTorch's wheels; its header also needs gloo's headers (libgloo-dev on
# Debian; the wheels ship them under torch/include). Without them training runs in one process.
find_path(LINVIDEO_GLOO_INCLUDE_DIR gloo/config.h HINTS ${TORCH_INCLUDE_DIRS})
find_file(LINVIDEO_C10D_GLOO_HEADER torch/csrc/distributed/c10d/ProcessGroupGloo.hpp
          HINTS ${TORCH_INCLUDE_DIRS})
set(LINVIDEO_HAS_GLOO OFF)
if(LINVIDEO_GLOO_INCLUDE_DIR AND LINVIDEO_C10D_GLOO_HEADER)
  set(LINVIDEO_HAS_GLOO ON)
endif()
find_package(absl REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
find_package(Threads REQUIRED)

# LibTorch's CMake config adds its flags to CMAKE_CXX_FLAGS; keep them but drop warnings noise.
string(REPLACE "-Werror" "" CMAKE_CXX_FLAGS "${CMAKE_CXX_FLAGS}")

if(LINVIDEO_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()

if(NOT LINVIDEO_CORE_ONLY)
  if(LINVIDEO_WITH_FFMPEG)
    pkg_check_modules(FFMPEG REQUIRED IMPORTED_TARGET libavcodec libavformat libavutil libswscale)
  endif()
  find_package(ZLIB REQUIRED)  # media/png.cc writes PNG itself
  find_package(Protobuf REQUIRED)
  find_package(gRPC CONFIG QUIET)
  if(NOT gRPC_FOUND)
    pkg_check_modules(GRPCPP REQUIRED IMPORTED_TARGET grpc++ grpc++_reflection)
  endif()
  find_program(GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
  find_package(prometheus-cpp CONFIG REQUIRED)
endif()

set(LINVIDEO_HAS_CUDA OFF)
if(LINVIDEO_WITH_CUDA)
  # nvcc is usually not on PATH (e.g. /usr/local/cuda/bin); point CMake at the default toolkit.
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    set(LINVIDEO_HAS_CUDA ON)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    set(CMAKE_CUDA_STANDARD 17)
  endif()
endif()
message(STATUS "linvideo: Torch ${Torch_VERSION}, CUDA kernels: ${LINVIDEO_HAS_CUDA}, "
               "Gloo (multi-process training): ${LINVIDEO_HAS_GLOO}, "
               "FFmpeg (MP4/WebM): ${LINVIDEO_WITH_FFMPEG}")

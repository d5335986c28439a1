#include "kernels/device_memory.h"

#include <unistd.h>

#include <fstream>

#if LINVIDEO_KERNELS_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime.h>
#endif

namespace linvideo::kernels {

std::vector<DeviceMemory> QueryDeviceMemory(int cuda_device) {
  std::vector<DeviceMemory> out;
  const int64_t page = sysconf(_SC_PAGESIZE);
  DeviceMemory host{"cpu", 0, static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * page};
  std::ifstream statm("/proc/self/statm");
  int64_t size_pages = 0, resident_pages = 0;
  if (statm >> size_pages >> resident_pages) host.used_bytes = resident_pages * page;
  out.push_back(host);
#if LINVIDEO_KERNELS_CUDA
  if (cuda_device >= 0) {
    int current = 0;
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaGetDevice(&current) == cudaSuccess && cudaSetDevice(cuda_device) == cudaSuccess &&
        cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
      out.push_back({"cuda:" + std::to_string(cuda_device),
                     static_cast<int64_t>(total_bytes - free_bytes),
                     static_cast<int64_t>(total_bytes)});
    }
    cudaSetDevice(current);
    cudaGetLastError();  // a failed query leaves no sticky error for LibTorch
  }
#else
  (void)cuda_device;
#endif
  return out;
}

void ReleaseCachedDeviceMemory(int cuda_device) {
#if LINVIDEO_KERNELS_CUDA
  int current = 0;
  if (cuda_device < 0 || cudaGetDevice(&current) != cudaSuccess) return;
  if (cudaSetDevice(cuda_device) == cudaSuccess) cudaDeviceSynchronize();
  cudaSetDevice(current);
  cudaGetLastError();
  c10::cuda::CUDACachingAllocator::emptyCache();  // every device's unused blocks
#else
  (void)cuda_device;
#endif
}

}  // namespace linvideo::kernels

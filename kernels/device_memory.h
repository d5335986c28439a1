#pragma once
// Memory use of the device the process computes on, for the server's linvideo_device_memory_bytes
// gauge: always the host ("cpu": this process's resident set and the machine's physical memory),
// and for a CUDA device (when this build links CUDA) the bytes in use (total − free from
// cudaMemGetInfo: LibTorch's caching allocator's reservations plus contexts and other processes')
// and its total. Only the device asked for is queried: querying another would create a CUDA
// context on it (hundreds of MB). Thread-safe.

#include <cstdint>
#include <string>
#include <vector>

namespace linvideo::kernels {

struct DeviceMemory {
  std::string device;  // "cpu", "cuda:0", ...
  int64_t used_bytes = 0;
  int64_t total_bytes = 0;
};

// `cuda_device` < 0: the host only.
std::vector<DeviceMemory> QueryDeviceMemory(int cuda_device);

// Waits for CUDA device `cuda_device` and hands LibTorch's cached, unused blocks back to the driver
// (so cudaMemGetInfo shows what is in use); the calling thread's current device is kept. No-op
// without CUDA in this build.
void ReleaseCachedDeviceMemory(int cuda_device);

}  // namespace linvideo::kernels

#include "kernels/cuda_stream.h"

#include <c10/util/Exception.h>

#include <utility>
#include <vector>

#if defined(LINVIDEO_KERNELS_CUDA)
// Only c10's stream API and the CUDA runtime: both unchanged from LibTorch 1.13 to 2.x (the event
// class moved between ATen and c10 in between).
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#endif

namespace linvideo::kernels {
namespace {

#if defined(LINVIDEO_KERNELS_CUDA)
c10::DeviceIndex IndexOf(const c10::Device& device) {
  return device.has_index() ? device.index() : c10::cuda::current_device();
}

void Check(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, what, " failed: ", cudaGetErrorString(err));
}

// The calling thread's own side stream of a device, taken from LibTorch's pool once. The caching
// allocator reuses a freed block only on the stream it was allocated on: a new pool stream per
// decode (32 of them, round robin) would keep up to 32 decodes' worth of blocks cached.
c10::cuda::CUDAStream ThreadSideStream(c10::DeviceIndex index) {
  thread_local std::vector<std::pair<c10::DeviceIndex, c10::cuda::CUDAStream>> streams;
  for (const auto& [i, stream] : streams) {
    if (i == index) return stream;
  }
  streams.emplace_back(index, c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index));
  return streams.back().second;
}
#endif

}  // namespace

StreamMark StreamMark::Record(const c10::Device& device) {
  StreamMark mark;
#if defined(LINVIDEO_KERNELS_CUDA)
  if (!device.is_cuda()) return mark;
  const c10::DeviceIndex index = IndexOf(device);
  const c10::cuda::CUDAGuard guard(index);  // events belong to the device current at creation
  cudaEvent_t event = nullptr;
  Check(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  mark.event_ = std::shared_ptr<void>(event, [index](void* e) {
    const c10::cuda::CUDAGuard g(index);
    cudaEventDestroy(static_cast<cudaEvent_t>(e));  // safe while the event is still pending
  });
  Check(cudaEventRecord(event, c10::cuda::getCurrentCUDAStream(index).stream()), "cudaEventRecord");
  mark.device_index_ = index;
#else
  (void)device;
#endif
  return mark;
}

void StreamMark::WaitOnCurrentStream() const {
#if defined(LINVIDEO_KERNELS_CUDA)
  if (event_ == nullptr) return;
  const auto index = static_cast<c10::DeviceIndex>(device_index_);
  const c10::cuda::CUDAGuard guard(index);
  Check(cudaStreamWaitEvent(c10::cuda::getCurrentCUDAStream(index).stream(),
                            static_cast<cudaEvent_t>(event_.get()), 0),
        "cudaStreamWaitEvent");
#endif
}

SideStreamScope::SideStreamScope(const c10::Device& device) {
#if defined(LINVIDEO_KERNELS_CUDA)
  if (!device.is_cuda()) return;
  device_index_ = IndexOf(device);
  guard_ = std::make_shared<c10::cuda::CUDAStreamGuard>(
      ThreadSideStream(static_cast<c10::DeviceIndex>(device_index_)));
#else
  (void)device;
#endif
}

void SideStreamScope::Synchronize() const {
#if defined(LINVIDEO_KERNELS_CUDA)
  if (guard_ == nullptr) return;
  c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device_index_)).synchronize();
#endif
}

SideStreamScope::~SideStreamScope() = default;  // the guard restores the thread's stream

}  // namespace linvideo::kernels

#pragma once
// Streams for work of one CUDA device issued from several threads: a scope that puts the calling
// thread on a side stream of its own, and a mark (an event) in one stream's work that another
// stream waits for on the device, without blocking the host. The server's decode runs on a side
// stream this way, so it overlaps the denoising steps on the GPU instead of queueing behind them on
// the default stream. For a CPU device, or in a build without CUDA, both do nothing.

#include <c10/core/Device.h>

#include <memory>

namespace linvideo::kernels {

// A point in the work enqueued so far on the calling thread's current stream of a device.
class StreamMark {
 public:
  StreamMark() = default;  // empty: waiting on it does nothing
  // Records the mark on the calling thread's current stream of `device`.
  static StreamMark Record(const c10::Device& device);
  // Makes the calling thread's current stream of the mark's device wait for the mark (device-side;
  // returns at once).
  void WaitOnCurrentStream() const;
  bool empty() const { return event_ == nullptr; }

 private:
  std::shared_ptr<void> event_;
  int device_index_ = -1;
};

// For its lifetime the calling thread's current stream of `device` is the thread's side stream:
// one of LibTorch's pool streams (non-blocking: it does not wait for the default stream), the same
// one every time on a thread, so the caching allocator can reuse its blocks. Memory handed between
// streams must be ordered by a StreamMark and stay alive until the consumer's work is done.
class SideStreamScope {
 public:
  explicit SideStreamScope(const c10::Device& device);
  ~SideStreamScope();
  SideStreamScope(const SideStreamScope&) = delete;
  SideStreamScope& operator=(const SideStreamScope&) = delete;
  // Blocks until the side stream's work so far is done (e.g. before freeing memory it may still
  // read when the work failed half way). Nothing on the CPU.
  void Synchronize() const;

 private:
  std::shared_ptr<void> guard_;
  int device_index_ = -1;
};

}  // namespace linvideo::kernels

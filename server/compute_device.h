#pragma once
// ComputeDevice: who may run model compute on this machine right now. On a CPU every step, decode
// and checkpoint warm-up uses all cores, and two at once time-slice each other ~5x slower, so they
// take an exclusive lease; on an accelerator (limits.overlap_decode) decode and warm-up overlap the
// steps and the lease is free. Created and owned by main (or a test), passed by pointer to the
// model registry (warm-ups), the engine (steps, batched text encoding) and its output stage
// (decodes); it must outlive them. Thread-safe.

#include <optional>

#include "absl/synchronization/mutex.h"

namespace linvideo::server {

class ComputeDevice {
 public:
  explicit ComputeDevice(bool exclusive) : exclusive_(exclusive) {}
  ComputeDevice(const ComputeDevice&) = delete;
  ComputeDevice& operator=(const ComputeDevice&) = delete;

  // Held for the duration of one piece of model compute; blocks until granted.
  class Lease {
   public:
    explicit Lease(ComputeDevice* device) {
      if (device != nullptr && device->exclusive_) lock_.emplace(&device->mu_);
    }

   private:
    std::optional<absl::MutexLock> lock_;
  };

  // A null device (tests without one) grants every lease at once.
  static Lease Acquire(ComputeDevice* device) { return Lease(device); }

 private:
  const bool exclusive_;
  absl::Mutex mu_;
};

}  // namespace linvideo::server

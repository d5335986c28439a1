#pragma once
// StreamLimiter: how many streaming Generate calls one client connection may hold open at once
// (limits.max_streams_per_connection). gRPC's peer string ("ipv4:10.0.0.5:51234") names the TCP
// connection: address and client port. Over the limit a call gets RESOURCE_EXHAUSTED at once,
// instead of waiting invisibly in HTTP/2's stream queue (grpc.max_streams, which must be higher).
// Thread-safe.

#include <map>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace linvideo::server {

class StreamLimiter {
 public:
  // `max_per_connection` 0: no limit.
  explicit StreamLimiter(int max_per_connection) : max_(max_per_connection) {}

  // An open stream's claim; gives it back when destroyed.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept : owner_(other.owner_), peer_(std::move(other.peer_)) {
      other.owner_ = nullptr;
    }
    Slot& operator=(Slot&& other) noexcept {
      if (this != &other) {
        if (owner_ != nullptr) owner_->Release(peer_);
        owner_ = other.owner_;
        peer_ = std::move(other.peer_);
        other.owner_ = nullptr;
      }
      return *this;
    }
    ~Slot() {
      if (owner_ != nullptr) owner_->Release(peer_);
    }

   private:
    friend class StreamLimiter;
    Slot(StreamLimiter* owner, std::string peer) : owner_(owner), peer_(std::move(peer)) {}
    StreamLimiter* owner_ = nullptr;
    std::string peer_;
  };

  // A slot for one more stream on `peer`'s connection, or RESOURCE_EXHAUSTED saying the limit.
  absl::Status Acquire(const std::string& peer, Slot* slot) ABSL_LOCKS_EXCLUDED(mu_);
  int open(const std::string& peer) const ABSL_LOCKS_EXCLUDED(mu_);
  size_t connections() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Release(const std::string& peer) ABSL_LOCKS_EXCLUDED(mu_);

  const int max_;
  mutable absl::Mutex mu_;
  std::map<std::string, int> open_ ABSL_GUARDED_BY(mu_);  // only connections with open streams
};

}  // namespace linvideo::server

#include "server/stream_limiter.h"

#include "absl/strings/str_cat.h"

namespace linvideo::server {

absl::Status StreamLimiter::Acquire(const std::string& peer, Slot* slot) {
  if (max_ <= 0) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  int& n = open_[peer];
  if (n >= max_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "this connection already has ", n, " streaming Generate calls open; at most ", max_,
        " are allowed per connection (limits.max_streams_per_connection): wait for one to end, "
        "use Submit, or open another connection"));
  }
  ++n;
  *slot = Slot(this, peer);
  return absl::OkStatus();
}

void StreamLimiter::Release(const std::string& peer) {
  absl::MutexLock lock(&mu_);
  auto it = open_.find(peer);
  if (it != open_.end() && --it->second <= 0) open_.erase(it);
}

int StreamLimiter::open(const std::string& peer) const {
  absl::MutexLock lock(&mu_);
  auto it = open_.find(peer);
  return it == open_.end() ? 0 : it->second;
}

size_t StreamLimiter::connections() const {
  absl::MutexLock lock(&mu_);
  return open_.size();
}

}  // namespace linvideo::server

#pragma once
// Per-client-address admission rate for Generate and Submit (limits.requests_per_minute_per_peer,
// limits.burst_per_peer): a token bucket per peer address (the port is dropped, so one client's
// many connections share a bucket). Over the rate: RESOURCE_EXHAUSTED saying the limit and when a
// request would be admitted again. Idle peers' buckets are forgotten once more than `max_peers`
// are tracked, so the table stays bounded under address churn.
// Thread safety: Admit may be called from any thread.

#include <cstddef>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace linvideo::server {

class RateLimiter {
 public:
  // per_minute <= 0: unlimited (Admit always OK). burst >= 1: requests admitted at once.
  RateLimiter(int per_minute, int burst, size_t max_peers = 1 << 16);

  bool enabled() const { return per_minute_ > 0; }
  absl::Status Admit(absl::string_view peer, absl::Time now);

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time last;
  };
  double Refilled(const Bucket& b, absl::Time now) const;

  const int per_minute_;
  const int burst_;
  const size_t max_peers_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

// A gRPC peer string without its port: "ipv4:10.0.0.7:51234" -> "ipv4:10.0.0.7",
// "ipv6:[::1]:51234" -> "ipv6:[::1]"; anything else (unix:, unknown) unchanged.
std::string PeerAddress(absl::string_view peer);

}  // namespace linvideo::server

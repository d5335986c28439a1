#include "server/rate_limiter.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace linvideo::server {

RateLimiter::RateLimiter(int per_minute, int burst, size_t max_peers)
    : per_minute_(per_minute),
      burst_(std::max(burst, 1)),
      max_peers_(std::max<size_t>(max_peers, 1)) {}

double RateLimiter::Refilled(const Bucket& b, absl::Time now) const {
  const double elapsed_s = std::max(0.0, absl::ToDoubleSeconds(now - b.last));
  return std::min<double>(burst_, b.tokens + elapsed_s * per_minute_ / 60.0);
}

absl::Status RateLimiter::Admit(absl::string_view peer, absl::Time now) {
  if (!enabled()) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  auto it = buckets_.find(peer);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_peers_) {
      // Forget the peers whose buckets have refilled (idle for burst / rate): they would start
      // full again anyway. Under a flood of fresh addresses, the least recently seen one goes
      // (clearing the table would hand every limited client, the flooder too, a fresh burst).
      absl::erase_if(buckets_, [&](const auto& kv) { return Refilled(kv.second, now) >= burst_; });
      if (buckets_.size() >= max_peers_) {
        auto oldest = std::min_element(
            buckets_.begin(), buckets_.end(),
            [](const auto& a, const auto& b) { return a.second.last < b.second.last; });
        buckets_.erase(oldest);
      }
    }
    it = buckets_.emplace(std::string(peer), Bucket{static_cast<double>(burst_), now}).first;
  }
  Bucket& b = it->second;
  b.tokens = Refilled(b, now);
  b.last = now;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return absl::OkStatus();
  }
  const double wait_s = (1.0 - b.tokens) * 60.0 / per_minute_;
  return absl::ResourceExhaustedError(absl::StrCat(
      "rate limit: ", per_minute_, " requests per minute per client address (burst ", burst_,
      ") exceeded by ", peer, "; retry in ", std::ceil(wait_s * 1000) / 1000, " s"));
}

std::string PeerAddress(absl::string_view peer) {
  if (!absl::StartsWith(peer, "ipv4:") && !absl::StartsWith(peer, "ipv6:")) {
    return std::string(peer);
  }
  const size_t colon = peer.rfind(':');
  // ipv6:[::1]:port — the port follows the closing bracket; ipv4:a.b.c.d:port.
  if (colon == absl::string_view::npos || colon < 5) return std::string(peer);
  if (absl::StartsWith(peer, "ipv6:") && peer[colon - 1] != ']') return std::string(peer);
  if (absl::StartsWith(peer, "ipv6:[")) {
    // One client holds a whole /64 (SLAAC, privacy addresses): it is one client address here,
    // or it could take a fresh burst with every address it picks. IPv4-mapped ones stay whole.
    const std::string inside(peer.substr(6, colon - 1 - 6));
    in6_addr a{};
    if (inet_pton(AF_INET6, inside.c_str(), &a) == 1 && !IN6_IS_ADDR_V4MAPPED(&a)) {
      std::memset(a.s6_addr + 8, 0, 8);
      char text[INET6_ADDRSTRLEN] = {};
      if (inet_ntop(AF_INET6, &a, text, sizeof(text)) != nullptr) {
        return absl::StrCat("ipv6:[", text, "]/64");
      }
    }
  }
  return std::string(peer.substr(0, colon));
}

}  // namespace linvideo::server

// server/rate_limiter.h: per-address token buckets — a burst is admitted, then one request per
// 60/rate seconds; other addresses are independent; the table stays bounded.
#include "server/rate_limiter.h"

#include <gtest/gtest.h>

#include "server/stream_limiter.h"

namespace linvideo::server {
namespace {

TEST(RateLimiterTest, BurstThenRateAndTheMessageSaysWhenToRetry) {
  RateLimiter limiter(/*per_minute=*/60, /*burst=*/3);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Admit("ipv4:10.0.0.1", t0).ok()) << i;
  absl::Status refused = limiter.Admit("ipv4:10.0.0.1", t0);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.message().find("60 requests per minute"), std::string::npos) << refused;
  EXPECT_NE(refused.message().find("retry in 1 s"), std::string::npos) << refused;
  EXPECT_TRUE(limiter.Admit("ipv4:10.0.0.2", t0).ok());  // another address has its own bucket
  EXPECT_FALSE(limiter.Admit("ipv4:10.0.0.1", t0 + absl::Milliseconds(900)).ok());
  EXPECT_TRUE(limiter.Admit("ipv4:10.0.0.1", t0 + absl::Milliseconds(1000)).ok());
  EXPECT_FALSE(limiter.Admit("ipv4:10.0.0.1", t0 + absl::Milliseconds(1100)).ok());
  // Idle long enough: back to a full burst, never more.
  const absl::Time later = t0 + absl::Hours(1);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Admit("ipv4:10.0.0.1", later).ok()) << i;
  EXPECT_FALSE(limiter.Admit("ipv4:10.0.0.1", later).ok());
}

TEST(RateLimiterTest, DisabledAdmitsEverything) {
  RateLimiter off(0, 1);
  EXPECT_FALSE(off.enabled());
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(off.Admit("ipv4:10.0.0.1", absl::Now()).ok());
}

TEST(RateLimiterTest, TheTableStaysBoundedUnderAddressChurn) {
  RateLimiter limiter(60, 1, /*max_peers=*/4);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(limiter.Admit("ipv4:10.0.1." + std::to_string(i), t0 + absl::Milliseconds(i)).ok())
        << i;
  }
  EXPECT_FALSE(limiter.Admit("ipv4:10.0.1.0", t0 + absl::Milliseconds(5)).ok());  // burst spent
  // A fifth address with the table full and nobody idle: the least recently seen address (.1)
  // is forgotten, not the whole table: .0 stays limited.
  EXPECT_TRUE(limiter.Admit("ipv4:10.0.1.4", t0 + absl::Milliseconds(6)).ok());
  EXPECT_FALSE(limiter.Admit("ipv4:10.0.1.0", t0 + absl::Milliseconds(7)).ok());
  EXPECT_TRUE(limiter.Admit("ipv4:10.0.1.1", t0 + absl::Milliseconds(8)).ok());  // fresh bucket
  // Peers spent at t0 + 0.5 s are not idle at t0 + 1 s and stay limited while others go.
  const absl::Time half = t0 + absl::Milliseconds(500), t1 = t0 + absl::Seconds(1);
  EXPECT_TRUE(limiter.Admit("ipv4:10.0.1.5", half).ok());
  EXPECT_TRUE(limiter.Admit("ipv4:10.0.1.6", half).ok());
  EXPECT_TRUE(limiter.Admit("ipv4:10.0.1.7", t1).ok());   // table full: an older peer goes
  EXPECT_FALSE(limiter.Admit("ipv4:10.0.1.5", t1).ok());  // kept, not started over
}

TEST(RateLimiterTest, PeerAddressDropsThePort) {
  EXPECT_EQ(PeerAddress("ipv4:10.0.0.7:51234"), "ipv4:10.0.0.7");
  // IPv6 clients by their /64 (one client may use any address in it); IPv4-mapped ones whole.
  EXPECT_EQ(PeerAddress("ipv6:[::1]:51234"), "ipv6:[::]/64");
  EXPECT_EQ(PeerAddress("ipv6:[2001:db8::1]:443"), "ipv6:[2001:db8::]/64");
  EXPECT_EQ(PeerAddress("ipv6:[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443"), "ipv6:[2001:db8:1:2::]/64");
  EXPECT_EQ(PeerAddress("ipv6:[::ffff:10.0.0.7]:443"), "ipv6:[::ffff:10.0.0.7]");
  EXPECT_EQ(PeerAddress("ipv6:[not-an-address]:443"), "ipv6:[not-an-address]");
  EXPECT_EQ(PeerAddress("unix:/tmp/s"), "unix:/tmp/s");
  EXPECT_EQ(PeerAddress("ipv4:"), "ipv4:");
  EXPECT_EQ(PeerAddress(""), "");
}

TEST(StreamLimiterTest, CountsOpenStreamsPerConnectionAndGivesThemBack) {
  StreamLimiter limiter(2);
  const std::string a = "ipv4:10.0.0.5:51234", b = "ipv4:10.0.0.5:51235";  // one host, 2 conns
  {
    StreamLimiter::Slot s1, s2, s3, t1;
    ASSERT_TRUE(limiter.Acquire(a, &s1).ok());
    ASSERT_TRUE(limiter.Acquire(a, &s2).ok());
    absl::Status refused = limiter.Acquire(a, &s3);
    EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_NE(refused.message().find("at most 2"), std::string::npos) << refused;
    EXPECT_TRUE(limiter.Acquire(b, &t1).ok()) << "another connection has its own count";
    EXPECT_EQ(limiter.open(a), 2);
    {
      StreamLimiter::Slot moved(std::move(s1));  // a moved slot is released once
    }
    EXPECT_EQ(limiter.open(a), 1);
    EXPECT_TRUE(limiter.Acquire(a, &s3).ok());
  }
  EXPECT_EQ(limiter.open(a), 0);
  EXPECT_EQ(limiter.connections(), 0u) << "closed connections leave nothing behind";
  StreamLimiter off(0);
  StreamLimiter::Slot slots[100];
  for (auto& slot : slots) EXPECT_TRUE(off.Acquire(a, &slot).ok());
}

}  // namespace
}  // namespace linvideo::server

// The replica naming rules of server/replica_router.h (forwarding itself runs against real servers
// in tests/e2e/scale_out_e2e_test.cc).
#include "server/replica_router.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "server/request_table.h"

namespace linvideo::server {
namespace {

TEST(ReplicaRouterTest, AdvertiseIsHostWithAnOptionalPort) {
  auto a = ParseAdvertise("10.244.1.7");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "10.244.1.7");
  EXPECT_EQ(a->port, 0);  // the listening port
  a = ParseAdvertise("linvideo-0.lv:50051");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "linvideo-0.lv");
  EXPECT_EQ(a->port, 50051);
  for (const char* bad : {"", ":50051", "a_b", "host:x", "host:70000", "[::1]:5",
                          "a-very-long-statefulset-pod-name-0.headless-service"}) {
    auto r = ParseAdvertise(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("allowed: HOST or HOST:PORT"), std::string::npos)
        << r.status();
  }
}

TEST(ReplicaRouterTest, IdsNameTheirReplicaAndStayValidIds) {
  RequestTable table;
  const ReplicaAddress longest{std::string(kMaxReplicaSuffix - 6, 'h'), 65535};
  table.set_id_suffix(ReplicaSuffix(longest));
  const std::string id = table.NewId();
  EXPECT_TRUE(RequestTable::ValidateId(id).ok()) << id;
  EXPECT_EQ(ReplicaOfId(id), longest.host + ":65535");
  EXPECT_EQ(ReplicaOfId("r1-2.10.0.0.1_50051"), "10.0.0.1:50051");
  EXPECT_EQ(ReplicaOfId("r1-2"), std::nullopt);         // generated without a replica
  EXPECT_EQ(ReplicaOfId("my-job.v2"), std::nullopt);    // a client's own id
  EXPECT_EQ(ReplicaOfId("r1-1.host_0"), std::nullopt);  // not a port
  EXPECT_EQ(ReplicaOfId("r1-1.host_99999"), std::nullopt);
  // Only the generated form names a replica: a client's "clip.part_7" stays a local id.
  EXPECT_EQ(ReplicaOfId("clip.part_7"), std::nullopt);
  EXPECT_EQ(ReplicaOfId("x.169.254.169.254_80"), std::nullopt);
  EXPECT_EQ(ReplicaOfId("r12-x.host_7"), std::nullopt);
  EXPECT_EQ(ReplicaOfId("r-1.host_7"), std::nullopt);
  EXPECT_EQ(ReplicaOfId("r12-3.host_7"), "host:7");
}

TEST(ReplicaRouterTest, PeersShareTheParentDomainOrTheSlash16) {
  EXPECT_TRUE(IsPeerHost("linvideo-server-0.lv-peers", "linvideo-server-7.lv-peers"));
  EXPECT_FALSE(IsPeerHost("linvideo-server-0.lv-peers", "evil.example.com"));
  EXPECT_FALSE(IsPeerHost("linvideo-server-0.lv-peers", "a.b.lv-peers"));
  EXPECT_FALSE(IsPeerHost("linvideo-server-0.lv-peers", ".lv-peers"));
  EXPECT_FALSE(IsPeerHost("linvideo-server-0.lv-peers", "169.254.169.254"));
  EXPECT_TRUE(IsPeerHost("10.244.1.7", "10.244.3.9"));
  EXPECT_FALSE(IsPeerHost("10.244.1.7", "10.245.1.7"));
  EXPECT_FALSE(IsPeerHost("10.244.1.7", "169.254.169.254"));
  EXPECT_FALSE(IsPeerHost("10.244.1.7", "host.244.1.7"));
  EXPECT_TRUE(IsPeerHost("linvideo-a", "linvideo-b"));
  EXPECT_FALSE(IsPeerHost("linvideo-a", "metadata.google.internal"));
}

TEST(ReplicaRouterTest, OwnIdsAndPlainIdsAreNotForwarded) {
  ReplicaRouter router(1 << 20);
  std::string address;
  auto none = [&](const std::string& id) {
    auto s = router.OwnerOf(id, &address);
    return s.ok() && *s == nullptr;
  };
  EXPECT_TRUE(none("r1-1.10.0.0.2_50051"));  // self not known yet
  router.SetSelf({"10.0.0.1", 50051});
  EXPECT_TRUE(none("r1-1.10.0.0.1_50051"));
  EXPECT_TRUE(none("r1-1"));
  EXPECT_TRUE(none("clip.part_7"));
  auto peer = router.OwnerOf("r1-1.10.0.0.2_50051", &address);
  ASSERT_TRUE(peer.ok()) << peer.status();
  EXPECT_NE(*peer, nullptr);
  EXPECT_EQ(address, "10.0.0.2:50051");
}

TEST(ReplicaRouterTest, IdsNamingNonPeersAreRefusedWithoutAChannel) {
  ReplicaRouter router(1 << 20);
  router.SetSelf({"linvideo-server-0.lv-peers", 50051});
  std::string address;
  auto r = router.OwnerOf("r1-1.169.254.169.254_80", &address);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("not a peer of this replica"), std::string::npos)
      << r.status();
  EXPECT_EQ(router.channels(), 0u);
}

TEST(ReplicaRouterTest, ChannelsAreBoundedLeastRecentlyUsedFirst) {
  ReplicaRouter router(1 << 20);
  router.SetSelf({"p0.lv", 50051});
  std::string address;
  auto first = router.OwnerOf("r1-1.p1.lv_50051", &address);
  ASSERT_TRUE(first.ok()) << first.status();
  std::shared_ptr<v1::Generation::Stub> held = *first;  // a call in flight on it
  for (size_t i = 0; i < ReplicaRouter::kMaxChannels + 10; ++i) {
    auto s = router.OwnerOf("r1-1.q" + std::to_string(i) + ".lv_50051", &address);
    ASSERT_TRUE(s.ok()) << s.status();
  }
  EXPECT_EQ(router.channels(), ReplicaRouter::kMaxChannels);
  // p1 was the least recently used and was dropped from the map; the held stub lives on.
  auto again = router.OwnerOf("r1-1.p1.lv_50051", &address);
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->get(), held.get());
  EXPECT_EQ(router.channels(), ReplicaRouter::kMaxChannels);
}

}  // namespace
}  // namespace linvideo::server

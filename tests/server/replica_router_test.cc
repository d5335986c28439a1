// The replica naming rules of server/replica_router.h (forwarding itself runs against real servers
// in tests/e2e/scale_out_e2e_test.cc).
#include "server/replica_router.h"

#include <gtest/gtest.h>

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
  EXPECT_EQ(ReplicaOfId("r1-2"), std::nullopt);       // generated without a replica
  EXPECT_EQ(ReplicaOfId("my-job.v2"), std::nullopt);  // a client's own id
  EXPECT_EQ(ReplicaOfId("x.host_0"), std::nullopt);   // not a port
  EXPECT_EQ(ReplicaOfId("x.host_99999"), std::nullopt);
}

TEST(ReplicaRouterTest, OwnIdsAndPlainIdsAreNotForwarded) {
  ReplicaRouter router(1 << 20);
  std::string address;
  EXPECT_EQ(router.OwnerOf("r1-1.10.0.0.2_50051", &address), nullptr);  // self not known yet
  router.SetSelf({"10.0.0.1", 50051});
  EXPECT_EQ(router.OwnerOf("r1-1.10.0.0.1_50051", &address), nullptr);
  EXPECT_EQ(router.OwnerOf("r1-1", &address), nullptr);
  EXPECT_NE(router.OwnerOf("r1-1.10.0.0.2_50051", &address), nullptr);
  EXPECT_EQ(address, "10.0.0.2:50051");
}

}  // namespace
}  // namespace linvideo::server

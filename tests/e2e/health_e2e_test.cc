// End-to-end: `linvideo health` (grpc.health.v1.Health/Check, the container HEALTHCHECK) against
// the real linvideo-server binary on loopback with the fake executor: SERVING exits 0; a paused
// server answers NOT_SERVING and exits 14; an unknown service is NOT_FOUND; no server, UNAVAILABLE.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

#include "tests/e2e/server_harness.h"

namespace linvideo::e2e {
namespace {

TEST(HealthE2eTest, ExitsZeroOnlyWhenServing) {
  const std::string root = ::testing::TempDir() + "/health_e2e_" + std::to_string(getpid());
  Shell("rm -rf " + root + " && mkdir -p " + root + "/ckpt/a");
  std::ofstream(root + "/ckpt/a/fake_model.json") << R"({"step_ms": 5, "item_ms": 1})";
  std::ofstream(root + "/token") << "s3cret\n";
  ServerProcess server;
  ASSERT_TRUE(server.Start(
      root, {"--executor=fake", "--model=default=" + root + "/ckpt/a",
             "--checkpoint_root=" + root + "/ckpt", "--auth.admin_token_file=" + root + "/token"}))
      << ReadFile(root + "/server.log");

  CmdResult r = server.Cli("health");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out, "SERVING\n");
  r = server.Cli("health --service=linvideo.v1.Generation");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out, "SERVING\n");
  r = server.Cli("health --service=no.such.Service");
  EXPECT_EQ(r.rc, 5) << r.out;  // NOT_FOUND
  EXPECT_NE(r.out.find("NOT_FOUND"), std::string::npos) << r.out;

  // Paused: the server answers but takes no new work.
  ASSERT_EQ(server.Cli("--token_file=" + root + "/token admin pause").rc, 0);
  r = server.Cli("health");
  EXPECT_EQ(r.rc, 14) << r.out;
  EXPECT_EQ(r.out, "NOT_SERVING\n");
  r = server.Cli("health --service=linvideo.v1.Generation");
  EXPECT_EQ(r.rc, 14) << r.out;
  // Liveness (what a Kubernetes livenessProbe asks) stays SERVING: a paused pod is not restarted.
  r = server.Cli("health --service=linvideo.v1.Liveness");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out, "SERVING\n");
  ASSERT_EQ(server.Cli("--token_file=" + root + "/token admin resume").rc, 0);
  r = server.Cli("health");
  EXPECT_EQ(r.rc, 0) << r.out;

  // Gone: the call fails fast with UNAVAILABLE, well inside the 5 s default deadline.
  const int port = server.port();
  server.Terminate();
  const auto start = std::chrono::steady_clock::now();
  r = Shell(Bin("client/linvideo") + " --server=127.0.0.1:" + std::to_string(port) + " health");
  EXPECT_EQ(r.rc, 14) << r.out;  // UNAVAILABLE
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  Shell("rm -rf " + root);
}

}  // namespace
}  // namespace linvideo::e2e

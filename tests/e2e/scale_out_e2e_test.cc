// Serving scale-out (server/replica_router.h) with 2 real linvideo-server replicas on loopback
// (the deterministic fake executor): the CLI and the Python client spread calls over both with
// --lb_policy=round_robin on one multi-address target; request ids name the replica that holds
// them; Get (`status`) and Cancel sent to the other replica are forwarded and answer as the owner
// would, with the same video bytes; a replica that is gone is named in the error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tests/e2e/server_harness.h"

namespace linvideo::e2e {
namespace {

std::string MakeReplicaRoot(const std::string& name) {
  const std::string root =
      ::testing::TempDir() + "/scale_out_" + std::to_string(getpid()) + "/" + name;
  Shell("rm -rf " + root + " && mkdir -p " + root + "/ckpt/a");
  std::ofstream(root + "/ckpt/a/fake_model.json") << R"({"step_ms": 40, "item_ms": 2})";
  return root;
}

std::vector<std::string> ReplicaArgs(const std::string& root) {
  return {"--executor=fake", "--model=tiny=" + root + "/ckpt/a",
          "--checkpoint_root=" + root + "/ckpt", "--replica.advertise=127.0.0.1",
          "--scheduler.max_queue_delay_ms=10"};
}

std::string Trim(const std::string& s) { return std::string(absl::StripAsciiWhitespace(s)); }

class ScaleOutE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    a_root_ = new std::string(MakeReplicaRoot("a"));
    b_root_ = new std::string(MakeReplicaRoot("b"));
    a_ = new ServerProcess();
    b_ = new ServerProcess();
    ASSERT_TRUE(a_->Start(*a_root_, ReplicaArgs(*a_root_))) << ReadFile(*a_root_ + "/server.log");
    ASSERT_TRUE(b_->Start(*b_root_, ReplicaArgs(*b_root_))) << ReadFile(*b_root_ + "/server.log");
  }
  static void TearDownTestSuite() {
    delete a_;
    delete b_;
    Shell("rm -rf " + std::filesystem::path(*a_root_).parent_path().string());
    delete a_root_;
    delete b_root_;
  }
  // The CLI against both replicas, round robin.
  static CmdResult Both(const std::string& args) {
    return Shell(Bin("client/linvideo") + " --server=ipv4:127.0.0.1:" + std::to_string(a_->port()) +
                 ",127.0.0.1:" + std::to_string(b_->port()) + " --lb_policy=round_robin " + args);
  }
  static std::string Suffix(const ServerProcess* s) {
    return ".127.0.0.1_" + std::to_string(s->port());
  }
  static std::string *a_root_, *b_root_;
  static ServerProcess *a_, *b_;
};
std::string *ScaleOutE2eTest::a_root_ = nullptr, *ScaleOutE2eTest::b_root_ = nullptr;
ServerProcess *ScaleOutE2eTest::a_ = nullptr, *ScaleOutE2eTest::b_ = nullptr;

constexpr char kShape[] = " --width=32 --height=32 --frames=5 ";

TEST_F(ScaleOutE2eTest, IdsNameTheReplicaAndTheOtherReplicaForwardsGet) {
  CmdResult r = a_->Cli("submit --prompt='a red ball' --seed=5 --steps=4" + std::string(kShape));
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::string id = Trim(r.out);
  ASSERT_TRUE(absl::EndsWith(id, Suffix(a_))) << id;
  // Polled through B until done; the result B returns is A's video, byte for byte.
  std::string via_b;
  for (int i = 0; i < 100 && via_b.find("REQUEST_STATE_DONE") == std::string::npos; ++i) {
    via_b = b_->Cli("status --id=" + id + " --out=" + *b_root_ + "/via_b.mp4").out;
    if (via_b.find("REQUEST_STATE_DONE") == std::string::npos) usleep(100000);
  }
  ASSERT_NE(via_b.find("state=REQUEST_STATE_DONE"), std::string::npos) << via_b;
  r = a_->Cli("status --id=" + id + " --out=" + *a_root_ + "/via_a.mp4");
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::string video = ReadFile(*a_root_ + "/via_a.mp4");
  EXPECT_GT(video.size(), 100u);
  EXPECT_EQ(video, ReadFile(*b_root_ + "/via_b.mp4"));
  // B never held the request: only forwarding can have answered.
  // An id of no replica (or another's that does not exist) is NOT_FOUND as before.
  r = b_->Cli("status --id=r1-1" + Suffix(b_));
  EXPECT_EQ(r.rc, 5) << r.out;
}

TEST_F(ScaleOutE2eTest, ClientIdsStayLocalAndCannotPoseAsAnotherReplicas) {
  // A client's own id that happens to end like an address stays on the replica that took it.
  CmdResult r = a_->Cli("submit --id=clip.part_7 --prompt='a red ball' --seed=7 --steps=2" +
                        std::string(kShape));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(Trim(r.out), "clip.part_7");
  r = a_->Cli("status --id=clip.part_7");
  EXPECT_EQ(r.rc, 0) << r.out;
  // The generated form is reserved: a client may not pick an id that names a replica.
  r = a_->Cli("submit --id=r1-1.127.0.0.1_9 --prompt='x' --steps=2" + std::string(kShape));
  EXPECT_EQ(r.rc, 3) << r.out;  // INVALID_ARGUMENT
  EXPECT_NE(r.out.find("has the form of an id this server generates"), std::string::npos) << r.out;
  // Integer flags are integers: no silent truncation or wrap-around in the client.
  for (const char* flag : {"--width=32.5", "--seed=-1", "--steps=4x"}) {
    r = a_->Cli(std::string("submit --prompt='x' ") + flag);
    EXPECT_EQ(r.rc, 64) << flag << ": " << r.out;
    EXPECT_NE(r.out.find("not an integer in ["), std::string::npos) << flag << ": " << r.out;
  }
  // An id naming a host outside the replicas' /16 is not dialled.
  r = a_->Cli("status --id=r1-1.169.254.169.254_80");
  EXPECT_EQ(r.rc, 5) << r.out;  // NOT_FOUND
  EXPECT_NE(r.out.find("not a peer of this replica"), std::string::npos) << r.out;
}

TEST_F(ScaleOutE2eTest, CancelThroughTheOtherReplica) {
  CmdResult r = b_->Cli("submit --prompt='a red ball' --seed=6 --steps=50" + std::string(kShape));
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::string id = Trim(r.out);
  ASSERT_TRUE(absl::EndsWith(id, Suffix(b_))) << id;
  r = a_->Cli("cancel --id=" + id);
  ASSERT_EQ(r.rc, 0) << r.out;
  // Cancel is acknowledged at once and applied at the engine's next plan (after the step in
  // flight, 40 ms here; docs/serving.md), so the owner is polled. Seen failing 5 of 5 times on an
  // idle machine when status was read once right after the cancel (session 23).
  for (int i = 0; i < 50; ++i) {
    r = b_->Cli("status --id=" + id);
    if (r.out.find("state=REQUEST_STATE_RUNNING") == std::string::npos &&
        r.out.find("state=REQUEST_STATE_QUEUED") == std::string::npos) {
      break;
    }
    usleep(100000);
  }
  EXPECT_NE(r.out.find("state=REQUEST_STATE_CANCELLED"), std::string::npos) << r.out;
}

TEST_F(ScaleOutE2eTest, RoundRobinSpreadsCallsOverBothReplicas) {
  // One CLI process, one channel, 8 calls: both replicas serve some.
  CmdResult r = Both("bench --clients=2 --requests=8 --prompt='a blue square' --steps=2" +
                     std::string(kShape));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("errors=0"), std::string::npos) << r.out;
  EXPECT_GT(MetricSum(a_->Metrics(), "linvideo_requests_total"), 0) << a_->Metrics();
  EXPECT_GT(MetricSum(b_->Metrics(), "linvideo_requests_total"), 0) << b_->Metrics();
  // The Python client: the same target and policy.
  r = Shell("/usr/bin/python3 " + std::string(LINVIDEO_SOURCE_DIR) +
            "/client/python/example.py --server=ipv4:127.0.0.1:" + std::to_string(a_->port()) +
            ",127.0.0.1:" + std::to_string(b_->port()) +
            " --lb_policy=round_robin --steps=2 --out=" + *a_root_ + "/py.mp4");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_GT(ReadFile(*a_root_ + "/py.mp4").size(), 100u);
}

TEST_F(ScaleOutE2eTest, ReplicaThatIsGoneIsNamed) {
  // A third replica takes a request, then stops: its id, asked at A, names it.
  const std::string root = MakeReplicaRoot("c");
  std::string id;
  int port = 0;
  {
    ServerProcess c;
    ASSERT_TRUE(c.Start(root, ReplicaArgs(root))) << ReadFile(root + "/server.log");
    CmdResult r = c.Cli("submit --prompt='x' --steps=2" + std::string(kShape));
    ASSERT_EQ(r.rc, 0) << r.out;
    id = Trim(r.out);
    port = c.port();
  }
  CmdResult r = a_->Cli("--timeout=5 status --id=" + id);
  EXPECT_EQ(r.rc, 14) << r.out;  // UNAVAILABLE
  EXPECT_NE(r.out.find("held by replica 127.0.0.1:" + std::to_string(port) +
                       ", which does not "
                       "answer"),
            std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace linvideo::e2e

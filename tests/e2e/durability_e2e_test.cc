// Kill tests: the real linvideo-server with --state_dir is SIGKILLed while Submit'ed requests are
// queued, running and finishing, then restarted (twice). Every accepted id must resolve to the
// video a request without a restart makes (same seed) or to an error that says why; a damaged
// stored result or a torn journal record must never be served.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "tests/e2e/server_harness.h"

namespace linvideo::e2e {
namespace {

namespace fs = std::filesystem;

constexpr char kArgs[] = " --prompt='a cat' --steps=30 --frames=5 --width=32 --height=32 ";

// "id=... state=REQUEST_STATE_DONE ..." -> "DONE"; "" when the call failed.
std::string State(const CmdResult& r) {
  const size_t at = r.out.find("state=REQUEST_STATE_");
  if (r.rc != 0 || at == std::string::npos) return "";
  const size_t from = at + 20;
  return r.out.substr(from, r.out.find(' ', from) - from);
}

// Polls `id` until it ended (DONE / FAILED / CANCELLED) or `timeout_s` passed.
CmdResult WaitEnded(const ServerProcess& s, const std::string& id, const std::string& out,
                    double timeout_s = 90) {
  CmdResult r;
  for (int i = 0; i < timeout_s * 5; ++i) {
    r = s.Cli("status --id=" + id + (out.empty() ? "" : " --out=" + out));
    const std::string st = State(r);
    if (st == "DONE" || st == "FAILED" || st == "CANCELLED") return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return r;
}

TEST(DurabilityE2eTest, AcceptedSubmitsSurviveSigkillAndRestart) {
  const std::string root = ::testing::TempDir() + "/durability_e2e_" + std::to_string(getpid());
  fs::remove_all(root);
  fs::create_directories(root + "/ckpt/a");
  std::ofstream(root + "/ckpt/a/fake_model.json") << R"({"step_ms": 25, "item_ms": 2})";
  const std::vector<std::string> args = {"--executor=fake",
                                         "--model=tiny=" + root + "/ckpt/a",
                                         "--state_dir=" + root + "/state",
                                         "--scheduler.max_batch=2",
                                         "--scheduler.max_queue=16",
                                         "--scheduler.max_queue_delay_ms=1"};
  auto server = std::make_unique<ServerProcess>();
  ASSERT_TRUE(server->Start(root, args)) << ReadFile(root + "/server.log");

  // Ten requests of ~0.8 s each, two at a time: ~4 s of work.
  std::map<std::string, int> seed_of;
  for (int seed = 1; seed <= 10; ++seed) {
    CmdResult r = server->Cli(std::string("submit") + kArgs + "--seed=" + std::to_string(seed));
    ASSERT_EQ(r.rc, 0) << r.out;
    const std::string id = r.out.substr(0, r.out.find('\n'));
    ASSERT_FALSE(id.empty());
    seed_of[id] = seed;
  }
  const std::string first = seed_of.begin()->first;
  std::string cancelled;
  for (const auto& [id, seed] : seed_of)
    if (seed == 10) cancelled = id;
  ASSERT_EQ(server->Cli("cancel --id=" + cancelled).rc, 0);
  // Kill once the first two are done and others are running or queued.
  ASSERT_EQ(State(WaitEnded(*server, first, "")), "DONE");
  kill(server->pid(), SIGKILL);
  server->Wait(10);

  // What a crash can leave behind: a torn journal record and a damaged result file.
  std::ofstream(root + "/state/journal", std::ios::app) << "0badc0de {\"op\":\"end\",\"id\":\"r";
  std::string damaged;
  for (const auto& f : fs::directory_iterator(root + "/state/results")) {
    // A finished result (the first one's is there: stored before it showed as done); not the
    // hidden temp file of a write the kill cut short.
    if (f.path().filename().string()[0] == '.') continue;
    damaged = f.path().string();
    std::string bytes = ReadFile(damaged);
    ASSERT_GT(bytes.size(), 100u);
    bytes[bytes.size() / 2] ^= 0x40;
    std::ofstream(damaged, std::ios::binary) << bytes;
    break;
  }
  ASSERT_FALSE(damaged.empty()) << "a finished request stored its result";

  // Restart and kill again almost at once (requests recovered and running again).
  server = std::make_unique<ServerProcess>();
  ASSERT_TRUE(server->Start(root, args)) << ReadFile(root + "/server.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  kill(server->pid(), SIGKILL);
  server->Wait(10);

  server = std::make_unique<ServerProcess>();
  ASSERT_TRUE(server->Start(root, args)) << ReadFile(root + "/server.log");
  const std::string log = ReadFile(root + "/server.log");
  EXPECT_NE(log.find("torn or corrupt record"), std::string::npos);
  EXPECT_NE(log.find("result unusable"), std::string::npos) << "the damaged result is not served";

  // Every accepted id resolves; each video equals a solo run of its seed on the restarted server.
  for (const auto& [id, seed] : seed_of) {
    const std::string out = root + "/" + id + ".mp4";
    CmdResult r = WaitEnded(*server, id, out);
    if (id == cancelled) {
      EXPECT_EQ(State(r), "CANCELLED") << r.out;
      EXPECT_NE(r.out.find("request cancelled"), std::string::npos) << r.out;
      continue;
    }
    ASSERT_EQ(State(r), "DONE") << id << ": " << r.out;
    const std::string solo = root + "/solo" + std::to_string(seed) + ".mp4";
    CmdResult g = server->Cli(std::string("generate") + kArgs +
                              "--quiet --seed=" + std::to_string(seed) + " --out=" + solo);
    ASSERT_EQ(g.rc, 0) << g.out;
    const std::string video = ReadFile(out);
    EXPECT_FALSE(video.empty()) << id;
    EXPECT_EQ(video, ReadFile(solo)) << id << " (seed " << seed << ")";
  }
  // The stored results show on /metrics (refreshed every 5 s): the nine videos, not the cancel.
  std::string metrics;
  for (int i = 0; i < 100; ++i) {
    metrics = server->Metrics();
    if (metrics.find("linvideo_stored_results{what=\"count\"} 9") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(metrics.find("linvideo_stored_results{what=\"count\"} 9"), std::string::npos)
      << metrics;
  CmdResult unknown = server->Cli("status --id=never-submitted");
  EXPECT_NE(unknown.rc, 0);
  EXPECT_NE(unknown.out.find("NOT_FOUND"), std::string::npos) << unknown.out;

  // A restart that no longer serves the model: nothing pending is left, so every id still answers
  // from the journal, and a new submit goes to the new model.
  server.reset();
  server = std::make_unique<ServerProcess>();
  ASSERT_TRUE(server->Start(root, {"--executor=fake", "--model=other=" + root + "/ckpt/a",
                                   "--state_dir=" + root + "/state"}))
      << ReadFile(root + "/server.log");
  for (const auto& [id, seed] : seed_of) {
    const std::string again = root + "/again.mp4";
    CmdResult r = server->Cli("status --id=" + id + " --out=" + again);
    EXPECT_EQ(State(r), id == cancelled ? "CANCELLED" : "DONE") << r.out;
    if (id != cancelled) {
      EXPECT_EQ(ReadFile(again), ReadFile(root + "/solo" + std::to_string(seed) + ".mp4")) << id;
    }
  }
}

// A stored result larger than one gRPC message (a whole one would be RESOURCE_EXHAUSTED): `linvideo
// status --out` reads it in parts, byte for byte the frame Generate streams.
TEST(DurabilityE2eTest, ResultsLargerThanOneMessageArePaged) {
  const std::string root = ::testing::TempDir() + "/paging_e2e_" + std::to_string(getpid());
  fs::remove_all(root);
  fs::create_directories(root + "/ckpt/a");
  std::ofstream(root + "/ckpt/a/fake_model.json")
      << R"({"step_ms": 1, "item_ms": 0, "noise": true, "max_width": 1024, "max_height": 1024})";
  ServerProcess server;
  ASSERT_TRUE(server.Start(root, {"--executor=fake", "--model=tiny=" + root + "/ckpt/a",
                                  "--state_dir=" + root + "/state",
                                  "--limits.max_message_bytes=1052672"}))  // 1 MiB + 4 KiB
      << ReadFile(root + "/server.log");
  const std::string shape =
      " --prompt='noise' --seed=3 --steps=2 --frames=1 --width=1024 "
      "--height=1024 --format=png";
  CmdResult r = server.Cli("submit" + shape);
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::string id = r.out.substr(0, r.out.find('\n'));
  r = WaitEnded(server, id, root + "/paged.png");
  ASSERT_EQ(State(r), "DONE") << r.out;
  const std::string paged = ReadFile(root + "/paged.png");
  EXPECT_GT(paged.size(), 3u << 20) << "1024x1024 noise should not compress";
  EXPECT_NE(r.out.find("wrote " + root + "/paged.png (" + std::to_string(paged.size())),
            std::string::npos)
      << r.out;
  // The same request streamed by Generate (one PNG per frame, each its own 1 MiB chunks).
  r = server.Cli("generate" + shape + " --out=" + root + "/streamed");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(paged, ReadFile(root + "/streamed/frame_0000.png"));
}

}  // namespace
}  // namespace linvideo::e2e

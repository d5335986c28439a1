// End-to-end with the real pipeline executor: the real linvideo-server binary serves random-weight
// tiny Wan model folders (made by the real `linvideo-model init`), driven by the real `linvideo`
// CLI. Checks what the fake executor cannot: a real model's video is decodable with the requested
// shape, batched requests give exactly the bytes they give alone, a real checkpoint hot-swaps under
// load without failures, and a truncated safetensors file is refused. Shapes are tiny (32x32, 5
// frames, 2 steps) so the whole file takes well under a minute on two cores.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "absl/strings/str_join.h"
#include "media/video_decoder.h"
#include "tests/e2e/server_harness.h"

namespace linvideo::e2e {
namespace {

constexpr char kShape[] = " --width=32 --height=32 --frames=5 --steps=2 ";
constexpr double kStartTimeoutS = 90;  // model load on a busy 2-core machine

// Makes ROOT/ckpt/{a,b} (tiny, seeds 1 and 2) and ROOT/ckpt/bad (a copy of a whose transformer
// weights are truncated). Returns "" and fills `error` on failure.
std::string MakeModels(const std::string& suffix, std::string* error) {
  const std::string root = ::testing::TempDir() + "/real_e2e_" + std::to_string(getpid()) + suffix;
  const std::string init = Bin("tools/linvideo-model") + " init --config tiny --seed ";
  CmdResult r = Shell("rm -rf " + root + " && mkdir -p " + root + "/ckpt && " + init + "1 " + root +
                      "/ckpt/a && " + init + "2 " + root + "/ckpt/b && cp -r " + root + "/ckpt/a " +
                      root + "/ckpt/bad && f=" + root +
                      "/ckpt/bad/transformer/diffusion_pytorch_model.safetensors && "
                      "truncate -s $(( $(stat -c %s $f) / 2 )) $f && echo s3cret > " +
                      root + "/token");
  if (r.rc != 0) return *error = r.out, "";
  return root;
}

class RealModelE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string error;
    root_ = new std::string(MakeModels("", &error));
    ASSERT_FALSE(root_->empty()) << error;
    server_ = new ServerProcess();
    ASSERT_TRUE(server_->Start(
        *root_,
        {"--model=tiny=" + *root_ + "/ckpt/a", "--checkpoint_root=" + *root_ + "/ckpt",
         "--auth.admin_token_file=" + *root_ + "/token", "--threads=2", "--scheduler.max_batch=4",
         "--scheduler.max_queue_delay_ms=300"},
        kStartTimeoutS))
        << ReadFile(*root_ + "/server.log");
  }
  static void TearDownTestSuite() {
    delete server_;
    delete root_;
  }
  static std::string Out(const std::string& name) { return *root_ + "/" + name; }
  // One quiet generation with `seed` into Out(name); returns the file's bytes ("" on failure).
  static std::string Generate(int seed, const std::string& name) {
    CmdResult r = server_->Cli("generate --prompt='a red ball' --quiet" + std::string(kShape) +
                               "--seed=" + std::to_string(seed) + " --out=" + Out(name));
    EXPECT_EQ(r.rc, 0) << r.out;
    return ReadFile(Out(name));
  }
  std::string Admin(const std::string& args) const {
    return "--token_file=" + Out("token") + " admin " + args;
  }
  static std::string* root_;
  static ServerProcess* server_;
};
std::string* RealModelE2eTest::root_ = nullptr;
ServerProcess* RealModelE2eTest::server_ = nullptr;

TEST_F(RealModelE2eTest, StreamingGenerateProducesDecodableMp4) {
  CmdResult r = server_->Cli("generate --prompt='a red ball'" + std::string(kShape) +
                             "--seed=1 --out=" + Out("a1.mp4"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("step 2/2"), std::string::npos) << r.out;
  auto video = media::DecodeVideo(ReadFile(Out("a1.mp4")));
  ASSERT_TRUE(video.ok()) << video.status();
  EXPECT_EQ(video->codec_name, "h264");
  EXPECT_EQ(video->frame_count, 5);
  EXPECT_EQ(video->width, 32);
  EXPECT_EQ(video->height, 32);
  // A random-weight model still makes a non-constant picture.
  const auto& px = video->frames.rgb;
  ASSERT_FALSE(px.empty());
  EXPECT_NE(std::count(px.begin(), px.end(), px[0]), static_cast<long>(px.size()));
}

TEST_F(RealModelE2eTest, ConcurrentRequestsAreBatchedAndMatchSoloRuns) {
  const std::string solo5 = Generate(5, "solo5.mp4");
  const std::string solo6 = Generate(6, "solo6.mp4");
  ASSERT_FALSE(solo5.empty());
  const std::string before = server_->Metrics();
  std::string cmd;
  const int seeds[] = {5, 6, 5, 7};
  for (int i = 0; i < 4; ++i) {
    cmd += Bin("client/linvideo") + " --server=127.0.0.1:" + std::to_string(server_->port()) +
           " generate --prompt='a red ball' --quiet" + kShape +
           "--seed=" + std::to_string(seeds[i]) +
           " --out=" + Out("c" + std::to_string(i) + ".mp4") + " & ";
  }
  CmdResult r = Shell(cmd + "wait");
  ASSERT_EQ(r.rc, 0) << r.out;
  // Same seed -> the same bytes as alone, even though the request ran in a batch of up to 4
  // (per-sample noise and per-sample text embeddings; the batched matmuls give identical floats
  // here, so the H.264 bytes match exactly).
  EXPECT_EQ(ReadFile(Out("c0.mp4")), solo5);
  EXPECT_EQ(ReadFile(Out("c2.mp4")), solo5);
  EXPECT_EQ(ReadFile(Out("c1.mp4")), solo6);
  EXPECT_NE(ReadFile(Out("c3.mp4")), solo5);
  EXPECT_NE(solo6, solo5);
  const std::string after = server_->Metrics();
  const double steps = MetricSum(after, "linvideo_batch_size_count") -
                       MetricSum(before, "linvideo_batch_size_count");
  const double items =
      MetricSum(after, "linvideo_batch_size_sum") - MetricSum(before, "linvideo_batch_size_sum");
  ASSERT_GT(steps, 0);
  EXPECT_GT(items / steps, 1.0) << "mean batch size over " << steps << " steps";
}

TEST_F(RealModelE2eTest, CorruptCheckpointIsRefusedAndOldOneStays) {
  const std::string a1 = Generate(1, "before_bad.mp4");
  CmdResult r = server_->Cli(Admin("load --model=tiny --path=bad"));
  EXPECT_EQ(r.rc, 9) << r.out;  // FAILED_PRECONDITION
  r = server_->Cli("models");
  EXPECT_NE(r.out.find(*root_ + "/ckpt/a"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("/ckpt/bad"), std::string::npos) << r.out;
  EXPECT_EQ(Generate(1, "after_bad.mp4"), a1);
}

TEST_F(RealModelE2eTest, HotSwapUnderLoadHasZeroFailuresAndServesTheNewModel) {
  const std::string a1 = Generate(1, "a1_again.mp4");
  // Reference: checkpoint b's video for seed 1 from a server that only ever had b.
  std::string b1;
  {
    ServerProcess ref;
    const std::string dir = Out("ref");
    Shell("mkdir -p " + dir);
    ASSERT_TRUE(ref.Start(dir, {"--model=tiny=" + Out("ckpt/b"), "--threads=2"}, kStartTimeoutS))
        << ReadFile(dir + "/server.log");
    CmdResult r = ref.Cli("generate --prompt='a red ball' --quiet" + std::string(kShape) +
                          "--seed=1 --out=" + dir + "/b1.mp4");
    ASSERT_EQ(r.rc, 0) << r.out;
    b1 = ReadFile(dir + "/b1.mp4");
  }
  ASSERT_NE(b1, a1) << "checkpoints a and b must differ";

  const std::string cli =
      Bin("client/linvideo") + " --server=127.0.0.1:" + std::to_string(server_->port());
  const std::string bench = cli + " bench --clients=2 --seconds=3 --prompt='a red ball'" + kShape +
                            "> " + Out("bench.txt") + " 2>&1 & ";
  CmdResult r =
      Shell(bench + "sleep 1; " + cli + " " + Admin("load --model=tiny --path=b") + " && wait");
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::string out = ReadFile(Out("bench.txt"));
  EXPECT_NE(out.find("errors=0"), std::string::npos) << out;
  EXPECT_EQ(out.find("ok=0 "), std::string::npos) << out;
  r = server_->Cli("models");
  EXPECT_NE(r.out.find(" b "), std::string::npos) << r.out;  // active: the path given to load
  EXPECT_EQ(r.out.find("/ckpt/a"), std::string::npos) << r.out;
  EXPECT_EQ(Generate(1, "b1_swapped.mp4"), b1);  // new requests get the new model's output
  EXPECT_GE(MetricSum(server_->Metrics(), "linvideo_checkpoint_swaps_total"), 1);
}

// Resident memory of a process (VmRSS), in bytes; -1 when unreadable.
int64_t ResidentBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // "N kB"
  }
  return -1;
}

// The linvideo_checkpoint_info series of `model` in a scrape.
std::vector<std::string> CheckpointSeries(const std::string& metrics, const std::string& model) {
  std::vector<std::string> out;
  std::istringstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("linvideo_checkpoint_info{", 0) == 0 &&
        line.find("model=\"" + model + "\"") != std::string::npos) {
      out.push_back(line);
    }
  }
  return out;
}

// Hot swaps keep memory bounded: only the active checkpoint and one previous one stay loaded
// (limits.keep_previous_checkpoints = 1), finished requests do not pin theirs, and freed pages go
// back to the system, so after a warm-up 20 swaps between two real checkpoints, each with a
// generation on it, leave resident memory within one model's size (before: +116 MB, ~6 MB a
// swap); the checkpoint-info metric shows exactly one live version throughout.
TEST_F(RealModelE2eTest, TwentySwapsKeepMemoryBoundedAndOneActiveVersion) {
  const std::string dir = Out("swaps");
  Shell("mkdir -p " + dir);
  ServerProcess s;
  ASSERT_TRUE(s.Start(dir,
                      {"--model=tiny=" + Out("ckpt/a"), "--checkpoint_root=" + Out("ckpt"),
                       "--auth.admin_token_file=" + Out("token"), "--threads=2"},
                      kStartTimeoutS))
      << ReadFile(dir + "/server.log");
  const int64_t model_bytes = std::stoll(Shell("du -sb " + Out("ckpt/a") + " | cut -f1").out);
  auto swap_and_generate = [&](int i) {
    CmdResult r = s.Cli(Admin(std::string("load --model=tiny --path=") + (i % 2 ? "b" : "a")));
    ASSERT_EQ(r.rc, 0) << "swap " << i << ": " << r.out;
    r = s.Cli("generate --prompt='a red ball' --quiet" + std::string(kShape) +
              "--seed=1 --out=" + dir + "/g.mp4");
    ASSERT_EQ(r.rc, 0) << "generate after swap " << i << ": " << r.out;
    const auto series = CheckpointSeries(s.Metrics(), "tiny");
    ASSERT_EQ(series.size(), 1u) << "after swap " << i << ":\n" << absl::StrJoin(series, "\n");
    EXPECT_NE(series[0].find("version=\"" + std::to_string(i + 1) + "\""), std::string::npos)
        << series[0];
  };
  // Warm-up: the first swaps also grow the allocator's per-thread arenas and gRPC's connection
  // state (~2 MB here); memory is measured from then on.
  constexpr int kWarmUp = 3, kSwaps = 20;
  for (int i = 1; i <= kWarmUp; ++i) {
    swap_and_generate(i);
    if (HasFatalFailure()) return;
  }
  const int64_t start = ResidentBytes(s.pid());
  ASSERT_GT(start, 0);
  std::string trace;
  for (int i = kWarmUp + 1; i <= kWarmUp + kSwaps; ++i) {
    swap_and_generate(i);
    if (HasFatalFailure()) return;
    trace += " " + std::to_string(ResidentBytes(s.pid()) / 1000000);
  }
  const int64_t end = ResidentBytes(s.pid());
  std::cout << "[ swaps    ] resident MB after each of " << kSwaps << " swaps:" << trace
            << "\n[ swaps    ] growth " << (end - start) / 1e6 << " MB from " << start / 1e6
            << " MB; one model is " << model_bytes / 1e6 << " MB\n";
  EXPECT_LT(end - start, model_bytes)
      << "resident memory after the warm-up " << start << " B, after " << kSwaps << " more swaps "
      << end << " B; one model is " << model_bytes << " B";
  // A rollback re-activates the previous version and the metric follows it, still one series.
  CmdResult r = s.Cli(Admin("rollback --model=tiny"));
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto series = CheckpointSeries(s.Metrics(), "tiny");
  ASSERT_EQ(series.size(), 1u) << absl::StrJoin(series, "\n");
  EXPECT_NE(series[0].find("version=\"" + std::to_string(kWarmUp + kSwaps) + "\""),
            std::string::npos)
      << series[0];
}

}  // namespace
}  // namespace linvideo::e2e

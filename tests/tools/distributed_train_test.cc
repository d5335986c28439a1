// Multi-process training (core/train/data_parallel.h) through linvideo-train's command line: every
// stage run as 2 processes on loopback Gloo (WORLD_SIZE/RANK/MASTER_ADDR/MASTER_PORT, as torchrun
// sets them) gives the weights 1 process gives on the combined batch, and a 2-process run whose
// rank 1 is SIGKILLed resumes from its checkpoint (with 2 processes, then with 1) to the weights of
// an uninterrupted run.
//
// The tolerance. Adam divides each gradient by its running RMS, so a parameter whose gradient is
// near Adam's eps (1e-8), or near 0 where fp32 summation order flips its sign, turns last-bit
// differences of the reduction order (2 processes sum 2 partial gradients) into visible update
// differences. The comparison is therefore the relative L2 difference of the two runs' UPDATES,
// ||(w_a - w0) - (w_b - w0)|| / ||w_a - w0||: measured 4e-5 (conversion) to 0.02 (the VAE, whose
// small decoder has many near-zero gradients) after a few steps; the bound is 0.05. A wrong shard,
// wrong noise rows or a missing gradient average is of order 1: each test also shows that 1 process
// on only rank 0's half of the batch lands far outside the bound.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "core/io/safetensors.h"
#include "tests/e2e/server_harness.h"

namespace fs = std::filesystem;

namespace {

const std::string kTools = std::string(LINVIDEO_BINARY_DIR) + "/tools/";
const std::string kTrain = kTools + "linvideo-train";
const std::string kTokenizer =
    std::string(LINVIDEO_SOURCE_DIR) + "/models/default/tokenizer/spiece.model";
constexpr double kBound = 0.05;

using linvideo::e2e::CmdResult;

// `command` under bash (the group scripts use its arrays); stdout and stderr together.
CmdResult Shell(const std::string& command) {
  return linvideo::e2e::Shell("bash -c '" + command + "'");
}

// A port nothing listens on now (the kernel's pick for port 0).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// The environment of rank `rank` of `world` processes.
std::string Env(int world, int rank, int port) {
  return "WORLD_SIZE=" + std::to_string(world) + " RANK=" + std::to_string(rank) +
         " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
         " LINVIDEO_DIST_TIMEOUT_S=120 ";
}

// `args` as `world` processes (1 thread each), rank r's output in `logs`/rank<r>.log; the exit
// code is nonzero when any rank failed.
CmdResult RunGroup(int world, const std::string& args, const std::string& logs) {
  fs::create_directories(logs);
  const int port = FreePort();
  std::string script = "pids=(); ";
  for (int r = 0; r < world; ++r) {
    script += Env(world, r, port) + kTrain + " " + args + " --threads 1 > " + logs + "/rank" +
              std::to_string(r) + ".log 2>&1 & pids+=($!); ";
  }
  script +=
      "rc=0; for p in ${pids[@]}; do wait $p || rc=1; done; cat " + logs + "/rank0.log; exit $rc";
  return Shell(script);
}

// ||(a - w0) - (b - w0)|| / ||a - w0|| over the tensors of `w0` (new tensors are skipped).
double RelativeUpdateDifference(const std::string& w0_file, const std::string& a_file,
                                const std::string& b_file) {
  auto w0 = linvideo::core::io::ReadSafetensors(w0_file);
  auto a = linvideo::core::io::ReadSafetensors(a_file);
  auto b = linvideo::core::io::ReadSafetensors(b_file);
  EXPECT_TRUE(w0.ok() && a.ok() && b.ok()) << w0_file << " " << a_file << " " << b_file;
  if (!w0.ok() || !a.ok() || !b.ok()) return INFINITY;
  double diff = 0, update = 0;
  size_t compared = 0;
  for (const auto& [name, base] : *w0) {
    auto ia = a->find(name), ib = b->find(name);
    if (ia == a->end() || ib == b->end() || !ia->second.sizes().equals(base.sizes())) continue;
    const torch::Tensor wa = ia->second.to(torch::kDouble), wb = ib->second.to(torch::kDouble);
    diff += (wa - wb).pow(2).sum().item<double>();
    update += (wa - base.to(torch::kDouble)).pow(2).sum().item<double>();
    ++compared;
  }
  EXPECT_GT(compared, 0u);
  EXPECT_GT(update, 0.0) << "the runs did not train";
  return std::sqrt(diff / update);
}

class DistributedTrainTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string(::testing::TempDir() + "/distributed_train");
    fs::remove_all(*root_);
    fs::create_directories(*root_);
    // A tiny model and its teacher's trajectories for the conversion and distillation stages.
    CmdResult r = Shell(kTools + "linvideo-model init --config tiny --seed 3 " + *root_ + "/tiny");
    ASSERT_EQ(r.rc, 0) << r.out;
    r = Shell(kTrain + " trajectories --model " + *root_ + "/tiny --out " + *root_ +
              "/cache --videos 6 --steps 3 --threads 1");
    ASSERT_EQ(r.rc, 0) << r.out;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*root_);
    delete root_;
  }
  static std::string Dir(const std::string& name) { return *root_ + "/" + name; }

  static std::string* root_;
};
std::string* DistributedTrainTest::root_ = nullptr;

const std::string kVae = "vae --base-dim 8 --crop 32 --window 5 --log-every 1 ";

TEST_F(DistributedTrainTest, VaeTwoProcessesMatchOneOnTheCombinedBatch) {
  // w0: the seeded initial weights (one step at a negligible learning rate).
  CmdResult r = Shell(kTrain + " " + kVae + "--steps 1 --lr 1e-20 --batch 4 --threads 1 --work " +
                      Dir("vae0"));
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::string args = kVae + "--steps 3 --batch 4 --work ";
  r = Shell(kTrain + " " + args + Dir("vae1") + " --threads 1");
  ASSERT_EQ(r.rc, 0) << r.out;
  r = RunGroup(2, args + Dir("vae2"), Dir("vae2_logs"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("2 processes (Gloo)"), std::string::npos) << r.out;
  // Only rank 0 logs and writes.
  EXPECT_EQ(Shell("cat " + Dir("vae2_logs") + "/rank1.log").out.find("step 1/3"),
            std::string::npos);
  const std::string file = "/vae.safetensors";
  const double same =
      RelativeUpdateDifference(Dir("vae0") + file, Dir("vae1") + file, Dir("vae2") + file);
  EXPECT_LT(same, kBound);
  // Negative control: rank 0's half of the batch alone.
  r = Shell(kTrain + " " + kVae + "--steps 3 --batch 2 --threads 1 --work " + Dir("vae_half"));
  ASSERT_EQ(r.rc, 0) << r.out;
  const double half =
      RelativeUpdateDifference(Dir("vae0") + file, Dir("vae1") + file, Dir("vae_half") + file);
  EXPECT_GT(half, 4 * kBound);
  std::printf("VAE: 2 processes vs 1: %.2e; half batch vs full: %.3f\n", same, half);
}

TEST_F(DistributedTrainTest, DitTwoProcessesMatchOneOnTheCombinedBatch) {
  CmdResult r =
      Shell(kTrain + " " + kVae + "--steps 2 --batch 2 --threads 1 --work " + Dir("dvae"));
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::string common = "dit --vae " + Dir("dvae") + " --tokenizer " + kTokenizer +
                             " --dim 32 --layers 2 --frames 5 --height 32 --width 32 --clips 8"
                             " --log-every 1 ";
  r = Shell(kTrain + " " + common + "--steps 1 --lr 1e-20 --batch 4 --threads 1 --work " +
            Dir("dit0") + " --out " + Dir("dit0_out"));
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::string args = common + "--steps 3 --batch 4 --frame-batch 2 --work ";
  r = Shell(kTrain + " " + args + Dir("dit1") + " --out " + Dir("dit1_out") + " --threads 1");
  ASSERT_EQ(r.rc, 0) << r.out;
  r = RunGroup(2, args + Dir("dit2") + " --out " + Dir("dit2_out"), Dir("dit2_logs"));
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::string file = "/transformer/diffusion_pytorch_model.safetensors";
  const double same = RelativeUpdateDifference(Dir("dit0_out") + file, Dir("dit1_out") + file,
                                               Dir("dit2_out") + file);
  EXPECT_LT(same, kBound);
  // Negative control: rank 0's rows alone.
  r = Shell(kTrain + " " + common + "--steps 3 --batch 2 --frame-batch 1 --threads 1 --work " +
            Dir("dit_half") + " --out " + Dir("dit_half_out"));
  ASSERT_EQ(r.rc, 0) << r.out;
  const double half = RelativeUpdateDifference(Dir("dit0_out") + file, Dir("dit1_out") + file,
                                               Dir("dit_half_out") + file);
  EXPECT_GT(half, 4 * kBound);
  std::printf("DiT: 2 processes vs 1: %.2e; half batch vs full: %.3f\n", same, half);
}

const std::string ConvertArgs(const std::string& root, int steps) {
  return "convert --base " + root + "/tiny --cache " + root + "/cache --linear-layers 1 --steps " +
         std::to_string(steps) + " --batch 4 --log-every 1 --checkpoint-every 5 ";
}

TEST_F(DistributedTrainTest, ConversionAndDistillationTwoProcessesMatchOne) {
  const std::string tiny = Dir("tiny") + "/transformer/diffusion_pytorch_model.safetensors";
  const std::string file = "/transformer/diffusion_pytorch_model.safetensors";
  CmdResult r = Shell(kTrain + " " + ConvertArgs(*root_, 6) + "--threads 1 --work " + Dir("conv1") +
                      " --out " + Dir("conv1_out"));
  ASSERT_EQ(r.rc, 0) << r.out;
  r = RunGroup(2, ConvertArgs(*root_, 6) + "--work " + Dir("conv2") + " --out " + Dir("conv2_out"),
               Dir("conv2_logs"));
  ASSERT_EQ(r.rc, 0) << r.out;
  const double convert =
      RelativeUpdateDifference(tiny, Dir("conv1_out") + file, Dir("conv2_out") + file);
  EXPECT_LT(convert, kBound);

  const std::string distill = "distill --base " + Dir("tiny") + " --cache " + Dir("cache") +
                              " --timesteps 1000,500 --steps 3 --batch 2 --log-every 1 ";
  r = Shell(kTrain + " " + distill + "--threads 1 --work " + Dir("dist1") + " --out " +
            Dir("dist1_out"));
  ASSERT_EQ(r.rc, 0) << r.out;
  r = RunGroup(2, distill + "--work " + Dir("dist2") + " --out " + Dir("dist2_out"),
               Dir("dist2_logs"));
  ASSERT_EQ(r.rc, 0) << r.out;
  const double dist =
      RelativeUpdateDifference(tiny, Dir("dist1_out") + file, Dir("dist2_out") + file);
  EXPECT_LT(dist, kBound);
  std::printf("convert: 2 processes vs 1: %.2e; distill: %.2e\n", convert, dist);

  // A combined batch the world size does not divide is refused, by every rank.
  r = RunGroup(2, ConvertArgs(*root_, 6) + "--batch 3 --work " + Dir("conv_bad"),
               Dir("conv_bad_logs"));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("--batch=3 is the combined batch of all 2 processes and must be a "
                       "multiple of WORLD_SIZE=2"),
            std::string::npos)
      << r.out;
}

TEST_F(DistributedTrainTest, KilledRankResumesFromTheCheckpointWithAnyWorldSize) {
  const std::string file = "/transformer/diffusion_pytorch_model.safetensors";
  const int steps = 120;
  CmdResult r = Shell(kTrain + " " + ConvertArgs(*root_, steps) + "--threads 1 --work " +
                      Dir("kill_ref") + " --out " + Dir("kill_ref_out"));
  ASSERT_EQ(r.rc, 0) << r.out;
  // 2 processes; once a checkpoint exists, SIGKILL rank 1. Rank 0's next all-reduce fails and it
  // exits nonzero instead of hanging.
  const std::string work = Dir("kill"), logs = Dir("kill_logs");
  fs::create_directories(logs);
  const int port = FreePort();
  const std::string args =
      ConvertArgs(*root_, steps) + "--threads 1 --work " + work + " --out " + Dir("kill_out");
  r = Shell(Env(2, 0, port) + kTrain + " " + args + " > " + logs + "/rank0.log 2>&1 & p0=$!; " +
            Env(2, 1, port) + kTrain + " " + args + " > " + logs + "/rank1.log 2>&1 & p1=$!; " +
            "for i in $(seq 600); do [ -f " + work +
            "/convert.ckpt ] && break; sleep 0.1; done; sleep 0.5; kill -9 $p1; "
            "wait $p0; echo rank0 exit $?; cat " +
            logs + "/rank0.log");
  ASSERT_NE(r.out.find("rank0 exit 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("all-reduce failed"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(Dir("kill_out"))) << "the run finished before the kill: raise steps";
  // Resume with 2 processes for 10 steps, then finish with 1.
  r = RunGroup(
      2,
      ConvertArgs(*root_, steps) + "--stop-after 10 --work " + work + " --out " + Dir("kill_out"),
      logs + "/resume2");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("resumed at step"), std::string::npos) << r.out;
  r = Shell(kTrain + " " + args);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("resumed at step"), std::string::npos) << r.out;
  const double resumed = RelativeUpdateDifference(Dir("tiny") + file, Dir("kill_ref_out") + file,
                                                  Dir("kill_out") + file);
  EXPECT_LT(resumed, kBound);
  std::printf("killed, resumed with 2 then 1 process(es) vs uninterrupted: %.2e\n", resumed);
}

}  // namespace

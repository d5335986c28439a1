// Post-training jobs end to end: the real linvideo-server (pipeline executor, a random-weight tiny
// model) runs real linvideo-train / linvideo-eval children, driven by the real `linvideo jobs`
// CLI. A job here converts the tiny model's one unpinned layer in a few seconds: 4 teacher videos
// of 2 steps, 40 training steps. Covered: start -> watch -> complete -> activate under Generate
// load with no failed request (new requests report the new version; rollback returns); a missed
// gate swaps nothing; cancel mid-run; SIGKILL of the child (retried, resumes) and of the server
// (restart resumes the job); queueing with max_concurrent 1; bad specs and auth.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "tests/e2e/server_harness.h"

namespace linvideo::e2e {
namespace {

namespace fs = std::filesystem;
constexpr double kStartTimeoutS = 90;
constexpr char kShape[] = " --width=32 --height=32 --frames=5 --steps=2 ";
// A job that finishes in seconds; `extra` adds flags.
std::string ConvertJob(const std::string& id, const std::string& extra) {
  return "jobs start convert --base=tiny --linear_layers=1 --trajectories=4 --trajectory_steps=2 "
         "--steps=40 --checkpoint_every=10 --batch=2 --id=" +
         id + " " + extra;
}

std::string MakeRoot(const std::string& suffix) {
  const std::string root = ::testing::TempDir() + "/jobs_e2e_" + std::to_string(getpid()) + suffix;
  CmdResult r = Shell("rm -rf " + root + " && mkdir -p " + root + "/ckpt " + root + "/jobs && " +
                      Bin("tools/linvideo-model") + " init --config tiny --seed 1 " + root +
                      "/ckpt/tiny && echo s3cret > " + root + "/token");
  EXPECT_EQ(r.rc, 0) << r.out;
  return root;
}

std::vector<std::string> ServerArgs(const std::string& root, int max_concurrent) {
  // The model path relative to the server's directory, as scripts/run.sh gives it: jobs run in
  // their own folders and must not depend on the server's working directory.
  return {"--model=tiny=" + fs::relative(root + "/ckpt/tiny").string(),
          "--checkpoint_root=" + root + "/ckpt",
          "--auth.admin_token_file=" + root + "/token",
          "--jobs.root=" + fs::relative(root + "/jobs").string(),
          "--jobs.max_concurrent=" + std::to_string(max_concurrent),
          "--jobs.threads=1",
          "--jobs.cancel_grace_s=5",
          "--threads=1",
          "--scheduler.max_queue_delay_ms=50"};
}

nlohmann::json JobJson(const std::string& root, const std::string& id) {
  const std::string text = ReadFile(root + "/jobs/" + id + "/job.json");
  auto j = nlohmann::json::parse(text, nullptr, false);
  return j.is_discarded() ? nlohmann::json::object() : j;
}

// Polls `done` every 100 ms for up to `timeout_s`.
bool WaitFor(const std::function<bool()>& done, double timeout_s) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

// The job is in its convert stage with at least one training checkpoint written.
bool ConvertCheckpointed(const std::string& root, const std::string& id) {
  const nlohmann::json j = JobJson(root, id);
  return j.value("stage_index", 0) == 1 && j.contains("progress") &&
         j["progress"].value("step", 0) >= 12 && j.value("pid", -1) > 0;
}

class JobsE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string(MakeRoot(""));
    server_ = new ServerProcess();
    ASSERT_TRUE(server_->Start(*root_, ServerArgs(*root_, 1), kStartTimeoutS))
        << ReadFile(*root_ + "/server.log");
  }
  static void TearDownTestSuite() {
    delete server_;
    delete root_;
  }
  static CmdResult Jobs(const std::string& args) {
    return server_->Cli("--token_file=" + *root_ + "/token " + args);
  }
  static std::string State(const std::string& id) {
    return JobJson(*root_, id).value("state", std::string());
  }
  static std::string* root_;
  static ServerProcess* server_;
};
std::string* JobsE2eTest::root_ = nullptr;
ServerProcess* JobsE2eTest::server_ = nullptr;

TEST_F(JobsE2eTest, ConvertsAndActivatesUnderLoadWithoutFailedRequests) {
  // Generate load for the whole job, swap included: rounds of 2 clients x tiny requests.
  std::atomic<bool> stop{false};
  auto load = std::async(std::launch::async, [&stop] {
    std::vector<CmdResult> rounds;
    while (!stop) {
      rounds.push_back(server_->Cli("bench --clients=2 --requests=4 --prompt='a red ball'" +
                                    std::string(kShape)));
    }
    return rounds;
  });
  CmdResult r = Jobs(ConvertJob("swap1",
                                "--activate --gate_prompts=seen --gate_seeds=1 "
                                "--gate_steps=2 --gate_max_drop=adherence:1 --watch"));
  ASSERT_EQ(r.rc, 0) << r.out << ReadFile(*root_ + "/server.log");
  EXPECT_NE(r.out.find("succeeded"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("output=tiny-linvideo-v1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("active as version 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("gate: base adherence="), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("running convert"), std::string::npos) << r.out;  // the progress bar
  EXPECT_NE(r.out.find("r [0."), std::string::npos) << r.out;            // the gate per layer
  EXPECT_TRUE(fs::exists(*root_ + "/ckpt/tiny-linvideo-v1/transformer/config.json"));
  stop = true;
  const std::vector<CmdResult> rounds = load.get();
  EXPECT_GE(rounds.size(), 2u);
  for (const CmdResult& b : rounds) {
    EXPECT_EQ(b.rc, 0) << b.out;
    EXPECT_NE(b.out.find("errors=0"), std::string::npos) << b.out;
  }
  // New requests run on the converted checkpoint; Admin.Rollback returns to the teacher.
  r = server_->Cli("generate --prompt='a red ball' --seed=3 --out=" + *root_ + "/after.mp4" +
                   kShape);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("started on tiny v2"), std::string::npos) << r.out;
  const std::string metrics = server_->Metrics();
  EXPECT_NE(metrics.find("linvideo_job_swaps_total{model=\"tiny\",result=\"ok\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.find("linvideo_jobs{kind=\"convert\",state=\"succeeded\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.find("linvideo_job_duration_seconds_count"), std::string::npos);
  r = Jobs("admin rollback --model=tiny");
  ASSERT_EQ(r.rc, 0) << r.out;
  r = server_->Cli("generate --prompt='a red ball' --seed=3 --out=" + *root_ + "/rolled.mp4" +
                   kShape);
  EXPECT_NE(r.out.find("started on tiny v1"), std::string::npos) << r.out;
  // Idempotent: the same id and spec gives the same job back.
  r = Jobs(ConvertJob("swap1",
                      "--activate --gate_prompts=seen --gate_seeds=1 --gate_steps=2 "
                      "--gate_max_drop=adherence:1"));
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("job swap1 succeeded"), std::string::npos) << r.out;
  r = Jobs(ConvertJob("swap1", "--seed=9"));
  EXPECT_EQ(r.rc, 6) << r.out;  // ALREADY_EXISTS: another spec under the same id
}

TEST_F(JobsE2eTest, MissedGateSwapsNothing) {
  // Demanding an adherence gain of 1.0 cannot be met.
  CmdResult r = Jobs(ConvertJob("gate1",
                                "--activate --output_name=gated --gate_prompts=seen "
                                "--gate_seeds=1 --gate_steps=2 "
                                "--gate_max_drop=adherence:-1 --watch"));
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("gate_failed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("quality gate missed: adherence dropped"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("output adherence="), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(*root_ + "/ckpt/gated-v1"));
  EXPECT_TRUE(fs::exists(*root_ + "/jobs/gate1/output/transformer/config.json"));
  r = Jobs("admin checkpoints");
  EXPECT_EQ(r.out.find("gated"), std::string::npos) << r.out;
}

TEST_F(JobsE2eTest, CancelMidRunKeepsLogs) {
  CmdResult r = Jobs(ConvertJob("cancel1", "--steps=3000"));
  ASSERT_EQ(r.rc, 0) << r.out;
  ASSERT_TRUE(WaitFor([&] { return ConvertCheckpointed(*root_, "cancel1"); }, 120))
      << JobJson(*root_, "cancel1").dump();
  const int pid = JobJson(*root_, "cancel1").value("pid", -1);
  ASSERT_GT(pid, 0);
  r = Jobs("jobs cancel cancel1");
  ASSERT_EQ(r.rc, 0) << r.out;
  ASSERT_TRUE(WaitFor([&] { return State("cancel1") == "cancelled"; }, 30));
  EXPECT_NE(kill(pid, 0), 0);  // the child is gone
  EXPECT_NE(ReadFile(*root_ + "/jobs/cancel1/logs/convert.log").find("step"), std::string::npos);
  r = Jobs("jobs get cancel1");
  EXPECT_NE(r.out.find("cancelled by CancelJob during stage convert"), std::string::npos) << r.out;
  r = Jobs("jobs list --state=cancelled");
  EXPECT_NE(r.out.find("cancel1"), std::string::npos) << r.out;
}

TEST_F(JobsE2eTest, KilledChildIsRetriedAndSecondJobQueues) {
  CmdResult r = Jobs(ConvertJob("kill1", "--steps=200 --output_name=killed"));
  ASSERT_EQ(r.rc, 0) << r.out;
  r = Jobs(ConvertJob("queued1", "--output_name=second"));
  ASSERT_EQ(r.rc, 0) << r.out;
  ASSERT_TRUE(WaitFor([&] { return ConvertCheckpointed(*root_, "kill1"); }, 120))
      << JobJson(*root_, "kill1").dump();
  EXPECT_EQ(State("queued1"), "queued");  // jobs.max_concurrent=1
  const int pid = JobJson(*root_, "kill1").value("pid", -1);
  ASSERT_GT(pid, 0);  // never kill(-1, ...)
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  r = Jobs("jobs watch kill1");
  EXPECT_EQ(r.rc, 0) << r.out << ReadFile(*root_ + "/jobs/kill1/logs/convert.log");
  EXPECT_TRUE(fs::exists(*root_ + "/ckpt/killed-v1"));
  const std::string log = ReadFile(*root_ + "/jobs/kill1/logs/convert.log");
  EXPECT_NE(log.find("attempt 2"), std::string::npos) << log;
  EXPECT_NE(log.find("resumed at step"), std::string::npos) << log;
  // The Python example client watches the second job to its end.
  r = Shell("/usr/bin/python3 " + std::string(LINVIDEO_SOURCE_DIR) +
            "/client/python/jobs_example.py --server=127.0.0.1:" + std::to_string(server_->port()) +
            " --token_file=" + *root_ + "/token --watch queued1");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("job queued1: JOB_SUCCEEDED output=second-v1"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(*root_ + "/ckpt/second-v1"));
}

TEST_F(JobsE2eTest, BadSpecsAndAuth) {
  struct Case {
    std::string args;
    int code;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"jobs start convert --base=nope --linear_layers=1", 5, "unknown base 'nope'"},
      {"jobs start convert --base=tiny --linear_layers=2", 3, "at most 1 can become linear"},
      {"jobs start convert --base=tiny --linear_layers=1 --steps=-5", 3,
       "convert.steps=-5: must be >= 0"},
      {"jobs start convert --base=tiny --linear_layers=1 --output_name=../x", 3,
       "directly under the checkpoint root"},
      {"jobs start convert --base=../.. --linear_layers=1", 7, "outside the checkpoint root"},
      {"jobs get nosuchjob", 5, "no job 'nosuchjob'"},
      {"jobs cancel nosuchjob", 5, "no job 'nosuchjob'"},
  };
  for (const Case& c : cases) {
    CmdResult r = Jobs(c.args);
    EXPECT_EQ(r.rc, c.code) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.needle), std::string::npos) << c.args << "\n" << r.out;
  }
  CmdResult r = server_->Cli("jobs list");
  EXPECT_EQ(r.rc, 16) << r.out;  // UNAUTHENTICATED
  r = Shell(Bin("client/linvideo") + " --help");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("jobs      start convert"), std::string::npos) << r.out;
  r = server_->Cli("--token=wrong jobs start convert --base=tiny --linear_layers=1");
  EXPECT_EQ(r.rc, 7) << r.out;  // PERMISSION_DENIED, as Admin
}

// A distillation job (DMD2, 4 steps) on the served model, gated and activated: the model then
// serves only its declared sampler, and ListModels shows its lineage. Last in the suite: it
// leaves `tiny` rolled back to the teacher.
TEST_F(JobsE2eTest, DistillsActivatesAndServesOnlyItsFourSteps) {
  CmdResult r = Jobs(
      "jobs start distill --base=tiny --trajectories=2 --trajectory_steps=2 --steps=4 "
      "--fake_updates=2 --batch=1 --checkpoint_every=2 --id=dist1 --activate "
      "--gate_prompts=seen --gate_seeds=1 --gate_steps=2 --gate_max_drop=adherence:1 --watch");
  ASSERT_EQ(r.rc, 0) << r.out << ReadFile(*root_ + "/jobs/dist1/logs/distill.log");
  EXPECT_NE(r.out.find("running distill"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("output=tiny-4step-v1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("gate: base adherence="), std::string::npos) << r.out;
  // The gate's output eval ran the distilled model at its own 4 steps.
  const std::string eval_log = ReadFile(*root_ + "/jobs/dist1/logs/gate-output.log");
  EXPECT_EQ(eval_log.find("--steps"), std::string::npos) << eval_log;
  r = server_->Cli(
      "generate --prompt='a red ball' --seed=3 --width=32 --height=32 --frames=5 "
      "--out=" +
      *root_ + "/four.mp4");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("step 4/4"), std::string::npos) << r.out;
  r = server_->Cli("generate --prompt='a red ball' --out=" + *root_ + "/x.mp4" + kShape);
  EXPECT_EQ(r.rc, 3) << r.out;  // steps 2: INVALID_ARGUMENT
  EXPECT_NE(r.out.find("this model is distilled for exactly 4 steps"), std::string::npos) << r.out;
  r = server_->Cli("models --lineage");
  EXPECT_NE(r.out.find("sampler fewstep only, timesteps 1000,750,500,250"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\"method\":\"dmd2\""), std::string::npos) << r.out;
  EXPECT_NE(server_->Metrics().find("linvideo_jobs{kind=\"distill\",state=\"succeeded\"} 1"),
            std::string::npos);
  // A distilled model is not distilled again; bad distill specs say what is allowed.
  r = Jobs("jobs start distill --base=tiny-4step-v1");
  EXPECT_EQ(r.rc, 3) << r.out;
  EXPECT_NE(r.out.find("already a distilled few-step model"), std::string::npos) << r.out;
  r = Jobs("jobs start distill --base=tiny --timesteps=250,500");
  EXPECT_EQ(r.rc, 3) << r.out;
  EXPECT_NE(r.out.find("strictly decreasing integers"), std::string::npos) << r.out;
  r = Jobs("admin rollback --model=tiny");
  EXPECT_EQ(r.rc, 0) << r.out;
  // The rolled-back tiny records no conversion: its real score can only be itself.
  r = Jobs("jobs start distill --base=tiny --real=tiny-4step-v1");
  EXPECT_EQ(r.rc, 3) << r.out;
  EXPECT_NE(r.out.find("distill.real 'tiny-4step-v1': the base 'tiny' records no conversion"),
            std::string::npos)
      << r.out;
}

TEST(JobsServerRestartTest, KilledServerResumesTheJob) {
  const std::string root = MakeRoot("_restart");
  auto server = std::make_unique<ServerProcess>();
  ASSERT_TRUE(server->Start(root, ServerArgs(root, 1), kStartTimeoutS));
  CmdResult r = server->Cli("--token_file=" + root + "/token " +
                            ConvertJob("resume1", "--steps=200 --activate"));
  ASSERT_EQ(r.rc, 0) << r.out;
  ASSERT_TRUE(WaitFor([&] { return ConvertCheckpointed(root, "resume1"); }, 120))
      << JobJson(root, "resume1").dump();
  const int child = JobJson(root, "resume1").value("pid", -1);
  ASSERT_GT(child, 0);
  kill(server->pid(), SIGKILL);
  server->Wait(10);
  // PR_SET_PDEATHSIG: the training child dies with the server.
  EXPECT_TRUE(WaitFor([&] { return kill(child, 0) != 0; }, 10));
  server = std::make_unique<ServerProcess>();
  ASSERT_TRUE(server->Start(root, ServerArgs(root, 1), kStartTimeoutS))
      << ReadFile(root + "/server.log");
  r = server->Cli("--token_file=" + root + "/token jobs watch resume1");
  EXPECT_EQ(r.rc, 0) << r.out << ReadFile(root + "/server.log");
  EXPECT_NE(r.out.find("active as version 2"), std::string::npos) << r.out;
  EXPECT_NE(ReadFile(root + "/jobs/resume1/logs/convert.log").find("resumed at step"),
            std::string::npos);
  r = server->Cli("generate --prompt='a red ball' --seed=1 --out=" + root + "/r.mp4" + kShape);
  EXPECT_NE(r.out.find("started on tiny v2"), std::string::npos) << r.out;
}

TEST(JobsGarbageTest, OnlyTheNewestFinishedJobFoldersAreKept) {
  const std::string root = MakeRoot("_gc");
  ServerProcess server;
  std::vector<std::string> args = ServerArgs(root, 2);
  args.push_back("--jobs.keep_finished=1");
  ASSERT_TRUE(server.Start(root, args, kStartTimeoutS)) << ReadFile(root + "/server.log");
  const std::string token = "--token_file=" + root + "/token ";
  for (const std::string id : {"old1", "new1"}) {
    CmdResult r = server.Cli(token + ConvertJob(id, "--output_name=" + id + " --watch"));
    ASSERT_EQ(r.rc, 0) << r.out;
  }
  // old1 ended first: its folder is removed, its published output stays.
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(root + "/jobs/old1"); }, 10));
  EXPECT_TRUE(fs::exists(root + "/jobs/new1/job.json"));
  EXPECT_TRUE(fs::exists(root + "/ckpt/old1-v1"));
  CmdResult r = server.Cli(token + "jobs list");
  EXPECT_EQ(r.out.find("old1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("new1"), std::string::npos) << r.out;
  r = server.Cli(token + "jobs get old1");
  EXPECT_EQ(r.rc, 5) << r.out;
}

// jobs.processes=2: the convert stage runs as `linvideo-train launch --nproc 2` (2 Gloo ranks);
// the job succeeds and is served; a batch the ranks cannot split is refused at Start.
TEST(JobsDataParallelTest, ConvertRunsAsTwoProcesses) {
  const std::string root = MakeRoot("_dp");
  ServerProcess server;
  std::vector<std::string> args = ServerArgs(root, 1);
  args.push_back("--jobs.processes=2");
  ASSERT_TRUE(server.Start(root, args, kStartTimeoutS)) << ReadFile(root + "/server.log");
  const std::string token = "--token_file=" + root + "/token ";
  CmdResult r = server.Cli(token + ConvertJob("dp1", "--activate --watch"));
  ASSERT_EQ(r.rc, 0) << r.out << ReadFile(root + "/jobs/dp1/logs/convert.log");
  EXPECT_NE(r.out.find("active as version 2"), std::string::npos) << r.out;
  const std::string log = ReadFile(root + "/jobs/dp1/logs/convert.log");
  EXPECT_NE(log.find("launch --nproc 2 -- convert"), std::string::npos) << log;
  EXPECT_NE(log.find("convert: 2 processes (Gloo)"), std::string::npos) << log;
  r = server.Cli("generate --prompt='a red ball' --seed=1 --out=" + root + "/dp.mp4" + kShape);
  EXPECT_NE(r.out.find("started on tiny v2"), std::string::npos) << r.out;
  r = server.Cli(token + "jobs start convert --base=tiny --linear_layers=1 --batch=3 --id=dp2");
  EXPECT_EQ(r.rc, 3) << r.out;
  EXPECT_NE(r.out.find("convert.batch=3: this server trains with jobs.processes=2"),
            std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace linvideo::e2e

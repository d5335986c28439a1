// server/job_manager.h against a fake linvideo-train (a shell script): what the supervisor does
// with bad input from its children and its own folder — a corrupt or wrongly typed progress.json,
// a job.json whose id is not its folder, a cancel accepted before a restart, a publish cut short
// by a restart — and server/child_process.h's leftover-child check.
#include "server/job_manager.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "absl/time/clock.h"
#include "server/child_process.h"

namespace linvideo::server {
namespace {

namespace fs = std::filesystem;

// trajectories: a progress.json with a fractional step, then one with every other field of the
// wrong type, left in place (the supervisor reads it again when the stage ends, so the test does
// not depend on its polling); convert: a half-written one, then an export with 1 linear layer of 2.
constexpr char kFakeTrain[] = R"(#!/bin/sh
cmd=$1; shift
while [ $# -gt 0 ]; do
  case "$1" in --out) out=$2;; --work) work=$2;; esac
  shift
done
mkdir -p "$out"
if [ "$cmd" = trajectories ]; then
  printf '{"step": 2.5, "total": 4}' > "$out/progress.json"
  sleep 0.3
  printf '{"step": 1, "total": "many", "eta_s": null, "losses": {"gap": null, "con": 0.5}, "r": [null, 0.25], "gate_layers": [1, "x"]}' > "$out/progress.json"
  sleep 0.3
  exit 0
fi
if [ "$cmd" = convert ]; then
  mkdir -p "$work" "$out/transformer"
  printf '[1, 2' > "$work/progress.json"
  sleep 0.5
  printf 'null' > "$work/progress.json"
  sleep 0.5
  printf '{"attention_kinds": ["softmax", "linear"]}' > "$out/transformer/config.json"
  echo '{}' > "$out/model_index.json"
  exit 0
fi
exit 3
)";

class JobManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("job_manager_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "base" / "transformer");
    fs::create_directories(dir_ / "ckpt");
    std::ofstream(dir_ / "base" / "transformer" / "config.json") << R"({"num_layers": 2})";
    const fs::path train = dir_ / "fake-train.sh";
    std::ofstream(train) << kFakeTrain;
    fs::permissions(train, fs::perms::owner_all);
    options_.root = (dir_ / "jobs").string();
    options_.checkpoint_root = (dir_ / "ckpt").string();
    options_.train_binary = options_.eval_binary = train.string();
    options_.poll = absl::Milliseconds(20);
    options_.cancel_grace = absl::Seconds(2);
    hooks_.resolve_base = [this](const std::string& base) -> absl::StatusOr<ResolvedBase> {
      return ResolvedBase{(dir_ / "base").string(), base};
    };
    hooks_.activate = [this](const std::string& model,
                             const std::string& path) -> absl::StatusOr<int64_t> {
      activated_ = model + ":" + path;
      return 7;
    };
    hooks_.validate = [](const std::string&) { return absl::OkStatus(); };
  }
  void TearDown() override { fs::remove_all(dir_); }

  JobSnapshot WaitEnded(JobManager& m, const std::string& id) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      absl::StatusOr<JobSnapshot> s = m.Get(id);
      if (!s.ok()) {
        ADD_FAILURE() << s.status();
        return {};
      }
      if (IsTerminal(s->state)) return *s;
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << "job " << id << " did not end";
    return {};
  }

  // A job.json in jobs/<folder> as an earlier server left it.
  void WriteJob(const std::string& folder, const JobSnapshot& snap, nlohmann::json extra = {}) {
    fs::create_directories(fs::path(options_.root) / folder / "logs");
    nlohmann::json j = SnapshotToJson(snap);
    for (const auto& [k, v] : extra.items()) j[k] = v;
    std::ofstream(fs::path(options_.root) / folder / "job.json") << j.dump();
  }

  JobSnapshot Snapshot(const std::string& id, JobState state) {
    JobSnapshot s;
    s.id = id;
    s.state = state;
    s.spec.base = "m";
    s.spec.convert.linear_layers = 1;
    s.base_dir = (dir_ / "base").string();
    s.base_model = "m";
    s.created_ms = s.finished_ms = 1000;  // 1970: long past any TTL
    return s;
  }

  fs::path dir_;
  JobManagerOptions options_;
  JobHooks hooks_;
  std::string activated_;
};

TEST_F(JobManagerTest, WronglyTypedProgressFilesAreSkippedNotFatal) {
  auto m = JobManager::Create(options_, hooks_, nullptr);
  ASSERT_TRUE(m.ok()) << m.status();
  JobSpec spec;
  spec.base = "m";
  spec.convert.linear_layers = 1;
  spec.activate = true;
  absl::StatusOr<JobSnapshot> started = (*m)->Start(spec);
  ASSERT_TRUE(started.ok()) << started.status();
  const JobSnapshot end = WaitEnded(**m, started->id);
  EXPECT_EQ(end.state, JobState::kSucceeded) << end.error;
  // What could be read was: the numbers among the losses, r by position, the integer layers.
  EXPECT_EQ(end.progress.losses.count("gap"), 0u);
  EXPECT_DOUBLE_EQ(end.progress.losses.at("con"), 0.5);
  ASSERT_EQ(end.progress.r.size(), 2u);
  EXPECT_TRUE(std::isnan(end.progress.r[0]));
  EXPECT_DOUBLE_EQ(end.progress.r[1], 0.25);
  EXPECT_EQ(end.progress.gate_layers, std::vector<int64_t>{1});
  EXPECT_EQ(end.output_path, "m-linvideo-v1");
  EXPECT_EQ(end.checkpoint_version, 7);
  EXPECT_EQ(activated_, "m:m-linvideo-v1");
  EXPECT_TRUE(fs::exists(dir_ / "ckpt" / "m-linvideo-v1" / "model_index.json"));
  EXPECT_FALSE(fs::exists(fs::path(options_.root) / end.id / "output"));
}

TEST_F(JobManagerTest, JobFilesWhoseIdIsNotTheirFolderAreIgnoredAndNeverCollected) {
  options_.keep_finished = 0;
  std::ofstream(dir_ / "sentinel") << "x";
  WriteJob("evil1", Snapshot("..", JobState::kSucceeded));
  WriteJob("evil2", Snapshot("job-2", JobState::kSucceeded));  // another folder's name
  WriteJob("old", Snapshot("old", JobState::kFailed));         // expired: collected
  auto m = JobManager::Create(options_, hooks_, nullptr);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE((*m)->List(std::nullopt).empty());
  EXPECT_TRUE(fs::exists(dir_ / "sentinel"));
  EXPECT_TRUE(fs::exists(fs::path(options_.root) / "evil1" / "job.json"));
  EXPECT_TRUE(fs::exists(fs::path(options_.root) / "evil2" / "job.json"));
  EXPECT_FALSE(fs::exists(fs::path(options_.root) / "old"));
}

TEST_F(JobManagerTest, SymlinkedJobFoldersAreIgnoredAndNeverCollected) {
  options_.keep_finished = 0;
  // A job folder elsewhere, linked into the jobs root: the server neither adopts nor removes it.
  const fs::path elsewhere = dir_ / "elsewhere";
  WriteJob("../elsewhere", Snapshot("linked", JobState::kFailed));
  fs::create_directories(options_.root);
  fs::create_symlink(elsewhere, fs::path(options_.root) / "linked");
  auto m = JobManager::Create(options_, hooks_, nullptr);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE((*m)->List(std::nullopt).empty());
  EXPECT_TRUE(fs::exists(elsewhere / "job.json"));
  EXPECT_TRUE(fs::is_symlink(fs::path(options_.root) / "linked"));
  // A dangling symlink with the next job's name: the job takes another name instead of creating
  // its folder at the link's target.
  fs::create_symlink(dir_ / "target", fs::path(options_.root) / "job-1");
  JobSpec spec;
  spec.base = "m";
  spec.convert.linear_layers = 1;
  absl::StatusOr<JobSnapshot> started = (*m)->Start(spec);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_NE(started->id, "job-1");
  WaitEnded(**m, started->id);
  EXPECT_FALSE(fs::exists(dir_ / "target"));
}

TEST_F(JobManagerTest, CancelAcceptedBeforeARestartIsHonouredAfterIt) {
  JobSnapshot s = Snapshot("job-3", JobState::kRunning);
  s.stage_index = 1;
  WriteJob("job-3", s, {{"cancel_requested", true}, {"pid", -1}});
  auto m = JobManager::Create(options_, hooks_, nullptr);
  ASSERT_TRUE(m.ok()) << m.status();
  absl::StatusOr<JobSnapshot> got = (*m)->Get("job-3");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state, JobState::kCancelled);
  EXPECT_NE(got->error.find("restarted"), std::string::npos) << got->error;
  // Nothing ran: the convert stage would have made these.
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_FALSE(fs::exists(fs::path(options_.root) / "job-3" / "convert"));
}

TEST_F(JobManagerTest, PublishCutShortByARestartFinishesTheMoveAndTheSwap) {
  // The version was claimed and recorded, then the server stopped before the move.
  JobSnapshot s = Snapshot("job-4", JobState::kValidating);
  s.stage_index = 2;  // trajectories, convert, publish
  s.spec.activate = true;
  s.output_path = "m-linvideo-v1";
  s.progress.stage = "publish";
  WriteJob("job-4", s, {{"pid", -1}});
  const fs::path output = fs::path(options_.root) / "job-4" / "output";
  fs::create_directories(output / "transformer");
  std::ofstream(output / "model_index.json") << "{}";
  fs::create_directories(dir_ / "ckpt" / "m-linvideo-v1");
  std::ofstream(dir_ / "ckpt" / "m-linvideo-v1" / "partial") << "a copy cut short";
  auto m = JobManager::Create(options_, hooks_, nullptr);
  ASSERT_TRUE(m.ok()) << m.status();
  const JobSnapshot end = WaitEnded(**m, "job-4");
  EXPECT_EQ(end.state, JobState::kSucceeded) << end.error;
  EXPECT_EQ(activated_, "m:m-linvideo-v1");
  EXPECT_TRUE(fs::exists(dir_ / "ckpt" / "m-linvideo-v1" / "model_index.json"));
  EXPECT_FALSE(fs::exists(dir_ / "ckpt" / "m-linvideo-v1" / "partial"));
  EXPECT_FALSE(fs::exists(dir_ / "ckpt" / "m-linvideo-v2"));
}

TEST_F(JobManagerTest, PublishWithNeitherExportNorOutputFailsSayingSo) {
  JobSnapshot s = Snapshot("job-5", JobState::kValidating);
  s.stage_index = 2;
  s.output_path = "m-linvideo-v1";
  WriteJob("job-5", s, {{"pid", -1}});
  auto m = JobManager::Create(options_, hooks_, nullptr);
  ASSERT_TRUE(m.ok()) << m.status();
  const JobSnapshot end = WaitEnded(**m, "job-5");
  EXPECT_EQ(end.state, JobState::kFailed);
  EXPECT_NE(end.error.find("holds a model"), std::string::npos) << end.error;
}

TEST_F(JobManagerTest, LeftoverChildIsMatchedByItsExactJobFolder) {
  fs::create_directories(dir_ / "jobs" / "job-1");
  fs::create_directories(dir_ / "jobs" / "job-10");
  ChildOptions child;
  child.argv = {"/bin/sleep", "30"};
  child.work_dir = fs::canonical(dir_ / "jobs" / "job-10").string();
  child.log_file = (dir_ / "sleep.log").string();
  absl::StatusOr<pid_t> pid = SpawnChild(child);
  ASSERT_TRUE(pid.ok()) << pid.status();
  ASSERT_GT(*pid, 0);
  // The child changes into its folder right after fork: give it a moment.
  const absl::Time started = absl::Now();
  while (!ChildAlive(*pid, child.work_dir) && absl::Now() - started < absl::Seconds(10)) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(ChildAlive(*pid, child.work_dir));
  EXPECT_FALSE(ChildAlive(*pid, fs::canonical(dir_ / "jobs" / "job-1").string()));
  SignalChild(*pid, SIGKILL);
  // A zombie (not reaped yet) counts as gone: it holds no files open.
  EXPECT_TRUE(WaitGone(*pid, absl::Seconds(10)));
  EXPECT_FALSE(ChildAlive(*pid, child.work_dir));
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!PollChild(*pid).has_value() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
}

}  // namespace
}  // namespace linvideo::server

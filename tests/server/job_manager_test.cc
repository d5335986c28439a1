// server/job_manager.h against a fake linvideo-train (a shell script): what the supervisor does
// with bad input from its children and its own folder — a corrupt or wrongly typed progress.json,
// a job.json whose id is not its folder, a cancel accepted before a restart, a publish cut short
// by a restart — and server/child_process.h's leftover-child check.
#include "server/job_manager.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "core/io/json_file.h"
#include "server/child_process.h"
#include "server/job_stages.h"

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

  // A fake linvideo-train `script` as options_.train_binary.
  void UseFakeTrain(const std::string& name, const std::string& script) {
    const fs::path train = dir_ / name;
    std::ofstream(train) << script;
    fs::permissions(train, fs::perms::owner_all);
    options_.train_binary = train.string();
  }
  // A fake convert's export: 1 linear layer of 2 (what CheckConvertOutput accepts for K = 1).
  static constexpr char kExportOneLinear[] = R"(  mkdir -p "$out/transformer"
  printf '{"attention_kinds": ["softmax", "linear"]}' > "$out/transformer/config.json"
  echo '{}' > "$out/model_index.json"
  exit 0)";

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

// Start's checks that need the base: the tool's own rules, so a job is refused when it is
// started instead of failing in its convert stage (found by a review).
TEST_F(JobManagerTest, StartRefusesWhatTheTrainingToolWouldRefuse) {
  std::ofstream(dir_ / "base" / "transformer" / "config.json") << R"({"num_layers": 4})";
  options_.processes = 3;
  auto m = JobManager::Create(options_, hooks_, nullptr);
  ASSERT_TRUE(m.ok()) << m.status();
  auto refused = [&](const JobSpec& spec, const std::string& needle) {
    absl::StatusOr<JobSnapshot> s = (*m)->Start(spec);
    ASSERT_FALSE(s.ok()) << needle;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find(needle), std::string::npos) << s.status();
  };
  JobSpec spec;
  spec.base = "m";
  spec.convert.linear_layers = 1;
  // Unset, the batch is linvideo-train's default (4 for convert, 2 for distill): 3 ranks cannot
  // split it.
  refused(spec, "convert.batch=0 (unset: 4)");
  JobSpec distill;
  distill.base = "m";
  distill.kind = JobKind::kDistill;
  refused(distill, "distill.batch=0 (unset: 2)");
  spec.convert.batch = 6;
  spec.convert.pinned = "none";
  spec.convert.linear_layers = 4;  // every layer: the tool keeps one softmax at least
  refused(spec, "allowed 1..3");
  spec.convert.linear_layers = 1;
  spec.convert.pinned = "2,2";
  refused(spec, "lists layer 2 twice");
  spec.convert.pinned = "";
  spec.convert.linear_layers = 2;
  spec.convert.select = "layers:1,1";
  refused(spec, "lists layer 1 twice");
  // layers:... names the linear layers itself; the pinned list (default 0) does not apply.
  spec.convert.linear_layers = 3;
  spec.convert.select = "layers:0,1,2";
  EXPECT_TRUE((*m)->Start(spec).ok());
}

// distill.real names the teacher the base was converted from: resolved like the base when the job
// is accepted, kept in job.json and handed to linvideo-train distill as --real; a base without a
// conversion, a teacher of other dimensions or an unknown name is refused at StartJob.
TEST_F(JobManagerTest, DistillRealIsResolvedCheckedAndPassedToTheTool) {
  const std::string dims = R"({"num_layers": 2, "dim": 64, "num_heads": 2})";
  std::ofstream(dir_ / "base" / "transformer" / "config.json") << dims;
  fs::create_directories(dir_ / "teacher" / "transformer");
  std::ofstream(dir_ / "teacher" / "transformer" / "config.json") << dims;
  fs::create_directories(dir_ / "other" / "transformer");
  std::ofstream(dir_ / "other" / "transformer" / "config.json")
      << R"({"num_layers": 2, "dim": 128, "num_heads": 2})";
  hooks_.resolve_base = [this](const std::string& name) -> absl::StatusOr<ResolvedBase> {
    if (name == "m") return ResolvedBase{(dir_ / "base").string(), name};
    if (name == "teacher" || name == "other") return ResolvedBase{(dir_ / name).string(), name};
    return absl::NotFoundError(absl::StrCat("unknown base '", name, "'"));
  };
  auto m = JobManager::Create(options_, hooks_, nullptr);
  ASSERT_TRUE(m.ok()) << m.status();
  JobSpec spec;
  spec.base = "m";
  spec.kind = JobKind::kDistill;
  spec.distill.real = "teacher";
  auto refused = [&](const JobSpec& s, absl::StatusCode code, const std::string& needle) {
    absl::StatusOr<JobSnapshot> r = (*m)->Start(s);
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_EQ(r.status().code(), code) << r.status();
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status();
  };
  refused(spec, absl::StatusCode::kInvalidArgument, "records no conversion");
  std::ofstream(dir_ / "base" / "model_index.json")
      << R"({"linvideo_conversion": {"base_weights_sha256": "ab"}})";
  JobSpec s = spec;
  s.distill.real = "nowhere";
  refused(s, absl::StatusCode::kNotFound, "distill.real: unknown base 'nowhere'");
  s.distill.real = "other";
  refused(s, absl::StatusCode::kInvalidArgument, "its DiT dim is 128, the base's 64");
  // The base itself is the default real score: nothing is passed.
  s.distill.real = "m";
  s.job_id = "self";
  absl::StatusOr<JobSnapshot> self = (*m)->Start(s);
  ASSERT_TRUE(self.ok()) << self.status();
  EXPECT_EQ(self->real_dir, "");
  spec.job_id = "teacher";
  absl::StatusOr<JobSnapshot> job = (*m)->Start(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  const std::string teacher = fs::weakly_canonical(dir_ / "teacher").string();
  EXPECT_EQ(job->real_dir, teacher);
  std::vector<std::string> argv;
  for (const Stage& st : JobStages(*job, options_, (dir_ / "jobs" / "teacher").string())) {
    if (st.name == "distill") argv = st.argv;
  }
  auto at = std::find(argv.begin(), argv.end(), "--real");
  ASSERT_NE(at, argv.end());
  ASSERT_NE(at + 1, argv.end());
  EXPECT_EQ(*(at + 1), teacher);
  for (const Stage& st : JobStages(*self, options_, (dir_ / "jobs" / "self").string())) {
    EXPECT_EQ(std::find(st.argv.begin(), st.argv.end(), "--real"), st.argv.end()) << st.name;
  }
}

// A StartJob retried with its job_id (its answer was lost) gets its job even when the checks
// would now fail; before, the retry was validated first and refused.
TEST_F(JobManagerTest, RetriedStartFindsItsJobBeforeCheckingAgain) {
  bool base_gone = false;
  hooks_.resolve_base = [&](const std::string& base) -> absl::StatusOr<ResolvedBase> {
    if (base_gone) return absl::NotFoundError("no model 'm'");
    return ResolvedBase{(dir_ / "base").string(), base};
  };
  auto m = JobManager::Create(options_, hooks_, nullptr);
  ASSERT_TRUE(m.ok()) << m.status();
  JobSpec spec;
  spec.job_id = "nightly";
  spec.base = "m";
  spec.convert.linear_layers = 1;
  ASSERT_TRUE((*m)->Start(spec).ok());
  base_gone = true;
  absl::StatusOr<JobSnapshot> again = (*m)->Start(spec);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->id, "nightly");
  spec.convert.steps = 9;
  EXPECT_EQ((*m)->Start(spec).status().code(), absl::StatusCode::kAlreadyExists);
  spec.job_id = "other";
  EXPECT_EQ((*m)->Start(spec).status().code(), absl::StatusCode::kNotFound);
  WaitEnded(**m, "nightly");
}

// jobs.processes > 1: the stage is `linvideo-train launch`, which reports a rank killed by
// SIGKILL (the OOM killer) as exit status 137. That is retried from the checkpoint like a single
// process killed by the signal; before, the job failed at once.
TEST_F(JobManagerTest, RankKilledUnderTheLauncherIsRetried) {
  UseFakeTrain("fake-launch.sh", R"(#!/bin/sh
cmd=$1; shift
if [ "$cmd" = launch ]; then
  while [ "$1" != "--" ]; do shift; done
  shift; cmd=$1; shift
fi
while [ $# -gt 0 ]; do
  case "$1" in --out) out=$2;; --work) work=$2;; esac
  shift
done
mkdir -p "$out"
[ "$cmd" = trajectories ] && exit 0
if [ "$cmd" = convert ]; then
  if [ ! -e "$work.killed" ]; then touch "$work.killed"; exit 137; fi
  )" + std::string(kExportOneLinear) +
                                     R"(
fi
exit 3
)");
  options_.processes = 2;
  auto m = JobManager::Create(options_, hooks_, nullptr);
  ASSERT_TRUE(m.ok()) << m.status();
  JobSpec spec;
  spec.base = "m";
  spec.convert.linear_layers = 1;
  spec.convert.batch = 2;
  absl::StatusOr<JobSnapshot> started = (*m)->Start(spec);
  ASSERT_TRUE(started.ok()) << started.status();
  const JobSnapshot end = WaitEnded(**m, started->id);
  EXPECT_EQ(end.state, JobState::kSucceeded) << end.error;
  std::ifstream log(fs::path(options_.root) / started->id / "logs" / "convert.log");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("attempt 2: "), std::string::npos) << text;
  EXPECT_NE(text.find(" launch --nproc 2 -- convert "), std::string::npos) << text;
}

// CancelJob while the publish stage runs (no child to signal): the request is recorded at once
// (job.json, a new revision for WatchJob), and publish stops at its next check.
TEST_F(JobManagerTest, CancelDuringPublishIsRecordedAndHonoured) {
  absl::Notification validating, release;
  hooks_.validate = [&](const std::string&) {
    validating.Notify();
    release.WaitForNotificationWithTimeout(absl::Seconds(20));
    return absl::OkStatus();
  };
  auto m = JobManager::Create(options_, hooks_, nullptr);
  ASSERT_TRUE(m.ok()) << m.status();
  JobSpec spec;
  spec.base = "m";
  spec.convert.linear_layers = 1;
  absl::StatusOr<JobSnapshot> started = (*m)->Start(spec);
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_TRUE(validating.WaitForNotificationWithTimeout(absl::Seconds(30)));
  const int64_t before = (*m)->Get(started->id)->revision;
  absl::StatusOr<JobSnapshot> c = (*m)->Cancel(started->id);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_GT(c->revision, before);
  absl::StatusOr<nlohmann::json> on_disk =
      core::io::ReadJsonFile((fs::path(options_.root) / started->id / "job.json").string());
  ASSERT_TRUE(on_disk.ok()) << on_disk.status();
  EXPECT_EQ((*on_disk)["cancel_requested"], true);
  release.Notify();
  const JobSnapshot end = WaitEnded(**m, started->id);
  EXPECT_EQ(end.state, JobState::kCancelled);
  EXPECT_NE(end.error.find("before publishing"), std::string::npos) << end.error;
  EXPECT_TRUE(end.output_path.empty());
}

// A stage that ends by itself (status 0) while the server stops is recorded as done: the next
// server goes on with the following stage instead of running it again.
TEST_F(JobManagerTest, StageFinishedDuringShutdownIsNotRunAgain) {
  UseFakeTrain("fake-slow.sh", R"(#!/bin/sh
cmd=$1; shift
while [ $# -gt 0 ]; do
  case "$1" in --out) out=$2;; esac
  shift
done
mkdir -p "$out"
if [ "$cmd" = trajectories ]; then
  trap '' TERM
  echo run >> "$out/../trajectory-runs"
  sleep 1
  exit 0
fi
if [ "$cmd" = convert ]; then
  )" + std::string(kExportOneLinear) +
                                   R"(
fi
exit 3
)");
  std::string id;
  {
    auto m = JobManager::Create(options_, hooks_, nullptr);
    ASSERT_TRUE(m.ok()) << m.status();
    JobSpec spec;
    spec.base = "m";
    spec.convert.linear_layers = 1;
    absl::StatusOr<JobSnapshot> started = (*m)->Start(spec);
    ASSERT_TRUE(started.ok()) << started.status();
    id = started->id;
    const fs::path runs = fs::path(options_.root) / id / "trajectory-runs";
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (!fs::exists(runs) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    ASSERT_TRUE(fs::exists(runs));
  }  // the server stops; the stage ignores SIGTERM and ends with status 0 within the grace
  absl::StatusOr<nlohmann::json> on_disk =
      core::io::ReadJsonFile((fs::path(options_.root) / id / "job.json").string());
  ASSERT_TRUE(on_disk.ok()) << on_disk.status();
  EXPECT_EQ((*on_disk)["stage_index"], 1);
  EXPECT_EQ((*on_disk)["pid"], -1);
  auto m = JobManager::Create(options_, hooks_, nullptr);
  ASSERT_TRUE(m.ok()) << m.status();
  const JobSnapshot end = WaitEnded(**m, id);
  EXPECT_EQ(end.state, JobState::kSucceeded) << end.error;
  std::ifstream runs(fs::path(options_.root) / id / "trajectory-runs");
  const std::string text((std::istreambuf_iterator<char>(runs)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "run\n");
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

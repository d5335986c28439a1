// RequestJournal: replay after a restart, torn and corrupt records, damaged results, TTL, the size
// cap, compaction; and the engine recovering journaled requests (fake executor).
#include "server/request_journal.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <filesystem>
#include <fstream>

#include "server/engine.h"
#include "server/fake_executor.h"
#include "server/services.h"

namespace linvideo::server {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class RequestJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/journal_test_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    options_.dir = dir_;
  }
  std::unique_ptr<RequestJournal> Open(std::vector<RecoveredRequest>* recovered) {
    auto j = RequestJournal::Open(options_, recovered);
    EXPECT_TRUE(j.ok()) << j.status();
    return j.ok() ? std::move(*j) : nullptr;
  }
  static std::shared_ptr<ServeRequest> Request(const std::string& id, uint64_t seed) {
    auto r = std::make_shared<ServeRequest>();
    r->id = id;
    r->model_name = "m";
    r->model_version = 3;
    r->created = absl::Now();
    r->params.prompt = "a red ball \"quoted\"\nand a new line";
    r->params.negative_prompt = "blur";
    r->params.width = 32;
    r->params.height = 48;
    r->params.frames = 5;
    r->params.steps = 4;
    r->params.guidance = 4.5;
    r->params.shift = 3.25;
    r->params.sampler = core::params::SamplerKind::kEuler;
    r->params.seed = seed;
    r->output.kind = OutputKind::kWebm;
    r->output.fps = 12;
    r->entry.priority = 2;
    return r;
  }
  // Ends `r` as done with `video` the way the output stage does: stored first, then published.
  static std::string Done(RequestJournal& j, ServeRequest& r, const std::string& video) {
    EncodedOutput out;
    out.blobs = {video};
    out.mime = "video/webm";
    RequestStats stats;
    stats.total_s = 1.5;
    stats.max_batch = 2;
    const absl::Time finished = absl::Now();
    absl::StatusOr<std::string> path = j.StoreDone(r, out, stats, finished);
    EXPECT_TRUE(path.ok()) << path.status();
    absl::MutexLock l(&r.mu);
    r.phase = RequestPhase::kDone;
    r.finished = finished;
    r.stats = stats;
    return path.ok() ? *path : "";
  }
  static const RecoveredRequest* FindId(const std::vector<RecoveredRequest>& v,
                                        const std::string& id) {
    for (const auto& r : v)
      if (r.id == id) return &r;
    return nullptr;
  }
  std::string dir_;
  JournalOptions options_;
};

TEST_F(RequestJournalTest, ReplayBringsBackPendingAndEndedRequestsWithTheirResults) {
  {
    std::vector<RecoveredRequest> none;
    auto j = Open(&none);
    ASSERT_TRUE(none.empty());
    auto a = Request("a", 11), b = Request("b", 12), c = Request("c", 13);
    for (auto* r : {&a, &b, &c}) ASSERT_TRUE(j->Submitted(**r).ok());
    EXPECT_TRUE(absl::IsAlreadyExists(j->Submitted(*a)));
    EXPECT_FALSE(Done(*j, *a, std::string("\0video-bytes\n", 13)).empty());
    EXPECT_TRUE(j->Ended(*a, false).ok()) << "a no-op for a done request";
    ASSERT_TRUE(c->Fail(absl::CancelledError("request cancelled")));
    ASSERT_TRUE(j->Ended(*c, false).ok());
    EXPECT_EQ(j->usage().results, 1);
  }  // "crash": b never ended
  std::vector<RecoveredRequest> rec;
  auto j = Open(&rec);
  ASSERT_EQ(rec.size(), 3u);
  const RecoveredRequest* a = FindId(rec, "a");
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->ended);
  EXPECT_TRUE(a->status.ok());
  EXPECT_EQ(a->model, "m");
  EXPECT_EQ(a->model_version, 3);
  EXPECT_EQ(a->mime, "video/webm");
  EXPECT_EQ(a->stats.max_batch, 2);
  auto stored = LoadStoredResult(a->result_path, "a");
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_EQ(stored->blobs.size(), 1u);
  EXPECT_EQ(stored->blobs[0], std::string("\0video-bytes\n", 13));
  const RecoveredRequest* b = FindId(rec, "b");
  ASSERT_NE(b, nullptr);
  EXPECT_FALSE(b->ended);
  // Every parameter comes back exactly.
  const auto expect = Request("b", 12);
  EXPECT_EQ(b->params.prompt, expect->params.prompt);
  EXPECT_EQ(b->params.negative_prompt, "blur");
  EXPECT_EQ(b->params.width, 32);
  EXPECT_EQ(b->params.height, 48);
  EXPECT_EQ(b->params.frames, 5);
  EXPECT_EQ(b->params.steps, 4);
  EXPECT_EQ(b->params.guidance, 4.5);
  EXPECT_EQ(b->params.shift, 3.25);
  EXPECT_EQ(b->params.sampler, core::params::SamplerKind::kEuler);
  EXPECT_EQ(b->params.seed, 12u);
  EXPECT_EQ(b->output.kind, OutputKind::kWebm);
  EXPECT_EQ(b->output.fps, 12);
  EXPECT_EQ(b->priority, 2);
  const RecoveredRequest* c = FindId(rec, "c");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->ended);
  EXPECT_EQ(c->status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(c->status.message(), "request cancelled");
}

TEST_F(RequestJournalTest, TornTailAndCorruptRecordsAreSkipped) {
  {
    std::vector<RecoveredRequest> none;
    auto j = Open(&none);
    ASSERT_TRUE(j->Submitted(*Request("a", 1)).ok());
    ASSERT_TRUE(j->Submitted(*Request("b", 2)).ok());
  }
  std::string text = Slurp(dir_ + "/journal");
  // Flip a byte inside the first record (its checksum no longer matches), then a torn record.
  const size_t brace = text.find("\"id\":\"a\"");
  ASSERT_NE(brace, std::string::npos);
  text[brace + 7] = 'x';
  text += "1234abcd {\"op\":\"submit\",\"id\":\"tor";
  std::ofstream(dir_ + "/journal", std::ios::binary) << text;
  std::vector<RecoveredRequest> rec;
  auto j = Open(&rec);
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0].id, "b");
  // The rewrite at Open dropped the bad lines: a second restart reads a clean journal.
  j.reset();
  rec.clear();
  Open(&rec);
  EXPECT_EQ(rec.size(), 1u);
  EXPECT_EQ(Slurp(dir_ + "/journal").find("tor"), std::string::npos);
}

TEST_F(RequestJournalTest, DamagedOrMissingResultIsNeverServedAndTheRequestRunsAgain) {
  std::string path_a, path_b;
  {
    std::vector<RecoveredRequest> none;
    auto j = Open(&none);
    for (const char* id : {"a", "b"}) {
      auto r = Request(id, 1);
      ASSERT_TRUE(j->Submitted(*r).ok());
      (id[0] == 'a' ? path_a : path_b) = Done(*j, *r, std::string(1000, 'v'));
    }
  }
  // a: one byte flipped; b: removed (e.g. a crash between the result and its end record).
  std::string bytes = Slurp(path_a);
  bytes[500] ^= 1;
  std::ofstream(path_a, std::ios::binary) << bytes;
  EXPECT_EQ(LoadStoredResult(path_a, "a").status().code(), absl::StatusCode::kDataLoss);
  fs::remove(path_b);
  EXPECT_EQ(LoadStoredResult(path_b, "b").status().code(), absl::StatusCode::kNotFound);
  // A stray temp file of an interrupted write is cleaned up.
  std::ofstream(dir_ + "/results/.a.result.tmp123") << "half";
  std::vector<RecoveredRequest> rec;
  auto j = Open(&rec);
  ASSERT_EQ(rec.size(), 2u);
  for (const auto& r : rec) EXPECT_FALSE(r.ended) << r.id << " runs again";
  EXPECT_TRUE(fs::is_empty(dir_ + "/results"));
}

TEST_F(RequestJournalTest, ResultsExpireAfterTheirTtlAndTheOldestGoBeyondTheCap) {
  options_.result_ttl = absl::Seconds(60);
  options_.max_result_bytes = 2500;  // two 1000-byte results and their framing fit, not three
  std::vector<RecoveredRequest> none;
  auto j = Open(&none);
  std::vector<std::string> paths;
  for (const char* id : {"a", "b", "c"}) {
    auto r = Request(id, 1);
    ASSERT_TRUE(j->Submitted(*r).ok());
    paths.push_back(Done(*j, *r, std::string(1000, id[0])));
    absl::SleepFor(absl::Milliseconds(2));
  }
  auto pending = Request("p", 9);
  ASSERT_TRUE(j->Submitted(*pending).ok());
  EXPECT_EQ(j->usage().results, 3);
  EXPECT_EQ(j->Maintain(absl::Now()), std::vector<std::string>{"a"});  // the oldest, over the cap
  EXPECT_FALSE(fs::exists(paths[0]));
  EXPECT_TRUE(fs::exists(paths[1]));
  EXPECT_EQ(j->usage().results, 2);
  // Past the TTL every ended request goes; the pending one stays.
  const auto gone = j->Maintain(absl::Now() + absl::Seconds(61));
  EXPECT_EQ(gone, (std::vector<std::string>{"b", "c"}));
  EXPECT_TRUE(fs::is_empty(dir_ + "/results"));
  j.reset();
  std::vector<RecoveredRequest> rec;
  Open(&rec);
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0].id, "p");
}

TEST_F(RequestJournalTest, CompactionKeepsTheJournalSmallAndEquivalent) {
  options_.min_compact_records = 100;
  options_.result_ttl = absl::Seconds(1);
  std::vector<RecoveredRequest> none;
  auto j = Open(&none);
  ASSERT_TRUE(j->Submitted(*Request("keep", 5)).ok());
  for (int i = 0; i < 300; ++i) {
    auto r = Request("r" + std::to_string(i), i);
    ASSERT_TRUE(j->Submitted(*r).ok());
    ASSERT_TRUE(r->Fail(absl::CancelledError("request cancelled")));
    ASSERT_TRUE(j->Ended(*r, false).ok());
  }
  EXPECT_EQ(j->usage().records, 601);
  j->Maintain(absl::Now() + absl::Seconds(2));  // all 300 expire, then the journal is rewritten
  EXPECT_EQ(j->usage().records, 1);
  EXPECT_EQ(j->usage().live, 1);
  EXPECT_LT(fs::file_size(dir_ + "/journal"), 1000u);
  j.reset();
  std::vector<RecoveredRequest> rec;
  Open(&rec);
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0].id, "keep");
}

TEST_F(RequestJournalTest, ForgottenRequestsStayForgottenAndBadFoldersAreRefused) {
  {
    std::vector<RecoveredRequest> none;
    auto j = Open(&none);
    ASSERT_TRUE(j->Submitted(*Request("a", 1)).ok());
    j->Forget("a");
  }
  std::vector<RecoveredRequest> rec;
  Open(&rec);
  EXPECT_TRUE(rec.empty());
  std::ofstream(dir_ + "/file") << "x";
  options_.dir = dir_ + "/file/state";
  auto bad = RequestJournal::Open(options_, &rec);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(bad.status().message().find("cannot create"), std::string::npos) << bad.status();
}

TEST_F(RequestJournalTest, ARequestPendingAtEveryRestartStopsComingBack) {
  {
    std::vector<RecoveredRequest> none;
    auto j = Open(&none);
    ASSERT_TRUE(j->Submitted(*Request("poison", 1)).ok());
  }
  for (int start = 1; start <= RequestJournal::kMaxRecoveries; ++start) {
    std::vector<RecoveredRequest> rec;
    Open(&rec);
    ASSERT_EQ(rec.size(), 1u);
    EXPECT_FALSE(rec[0].ended) << "restart " << start << " runs it again";
  }
  std::vector<RecoveredRequest> rec;
  Open(&rec);
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_TRUE(rec[0].ended);
  EXPECT_EQ(rec[0].status.code(), absl::StatusCode::kInternal);
  EXPECT_NE(rec[0].status.message().find("unclean server exits in a row"), std::string::npos)
      << rec[0].status;
}

TEST_F(RequestJournalTest, GracefulStopsDoNotCountAgainstTheRestartLimit) {
  {
    std::vector<RecoveredRequest> none;
    auto j = Open(&none);
    ASSERT_TRUE(j->Submitted(*Request("backlog", 1)).ok());
    ASSERT_TRUE(j->Submitted(*Request("backlog2", 2)).ok());
    ASSERT_TRUE(j->MarkCleanShutdown().ok());
  }
  // Many rolling deploys: each start finds the backlog pending and each stop is clean.
  for (int start = 1; start <= 2 * RequestJournal::kMaxRecoveries; ++start) {
    std::vector<RecoveredRequest> rec;
    auto j = Open(&rec);
    ASSERT_EQ(rec.size(), 2u);
    EXPECT_FALSE(rec[0].ended) << "deploy " << start;
    EXPECT_FALSE(rec[1].ended) << "deploy " << start;
    ASSERT_TRUE(j->MarkCleanShutdown().ok());
  }
  // Unclean exits still count, and a clean stop between them neither resets nor adds: starts
  // ending crash, clean, crash, crash, crash are 4 unclean exits (> kMaxRecoveries = 3).
  static_assert(RequestJournal::kMaxRecoveries == 3);
  for (bool clean_exit : {false, true, false, false, false}) {
    std::vector<RecoveredRequest> rec;
    auto j = Open(&rec);
    ASSERT_EQ(rec.size(), 2u);
    EXPECT_FALSE(rec[0].ended) << rec[0].status;
    if (clean_exit) ASSERT_TRUE(j->MarkCleanShutdown().ok());
  }
  std::vector<RecoveredRequest> rec;
  Open(&rec);
  ASSERT_EQ(rec.size(), 2u);
  EXPECT_TRUE(rec[0].ended);
  EXPECT_EQ(rec[0].status.code(), absl::StatusCode::kInternal);
  EXPECT_NE(rec[0].status.message().find("unclean server exits in a row"), std::string::npos)
      << rec[0].status;
}

TEST_F(RequestJournalTest, AResultThatCannotBeStoredSaysSoAfterARestart) {
  options_.max_result_bytes = 100;
  {
    std::vector<RecoveredRequest> none;
    auto j = Open(&none);
    auto r = Request("big", 1);
    ASSERT_TRUE(j->Submitted(*r).ok());
    EncodedOutput out;
    out.blobs = {std::string(1000, 'x')};
    auto stored = j->StoreDone(*r, out, RequestStats{}, absl::Now());
    EXPECT_EQ(stored.status().code(), absl::StatusCode::kResourceExhausted) << stored.status();
  }
  std::vector<RecoveredRequest> rec;
  Open(&rec);
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_TRUE(rec[0].ended);
  EXPECT_EQ(rec[0].status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(rec[0].status.message().find("could not be stored"), std::string::npos)
      << rec[0].status;
}

TEST_F(RequestJournalTest, AnotherRequestsResultFileIsNeverServed) {
  std::vector<RecoveredRequest> none;
  auto j = Open(&none);
  auto a = Request("a", 1), b = Request("b", 2);
  ASSERT_TRUE(j->Submitted(*a).ok());
  ASSERT_TRUE(j->Submitted(*b).ok());
  const std::string path_a = Done(*j, *a, "video a"), path_b = Done(*j, *b, "video b");
  fs::copy_file(path_a, path_b, fs::copy_options::overwrite_existing);  // as if A and a collided
  auto served = LoadStoredResult(path_b, "b");
  EXPECT_EQ(served.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(served.status().message().find("another request"), std::string::npos)
      << served.status();
}

TEST_F(RequestJournalTest, AFailedAppendLeavesNoTornRecordBehind) {
  std::vector<RecoveredRequest> none;
  auto j = Open(&none);
  ASSERT_TRUE(j->Submitted(*Request("before", 1)).ok());
  // A full disk, simulated by the file size limit: the long record is cut off part-way.
  auto big = Request("big", 2);
  big->params.prompt = std::string(20000, 'p');
  const auto size = fs::file_size(dir_ + "/journal");
  struct rlimit old {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = size + 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  absl::Status refused = j->Submitted(*big);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(fs::file_size(dir_ + "/journal"), size) << "the partial record was cut off";
  ASSERT_TRUE(j->Submitted(*Request("after", 3)).ok());
  j.reset();
  std::vector<RecoveredRequest> rec;
  Open(&rec);
  ASSERT_EQ(rec.size(), 2u);
  EXPECT_NE(FindId(rec, "before"), nullptr);
  EXPECT_NE(FindId(rec, "after"), nullptr) << "the acknowledged Submit after the failure survives";
}

TEST_F(RequestJournalTest, EndsThatCannotBeAppendedAreWrittenByTheNextMaintain) {
  std::vector<RecoveredRequest> none;
  auto j = Open(&none);
  auto cancelled = Request("cancelled", 1), done = Request("done", 2), refused = Request("ref", 3);
  for (auto* r : {&cancelled, &done, &refused}) ASSERT_TRUE(j->Submitted(**r).ok());
  ASSERT_TRUE(cancelled->Fail(absl::CancelledError("request cancelled")));
  // A full disk for the journal (the size limit is its current size): no record can be appended,
  // while the small result file still fits.
  const auto size = fs::file_size(dir_ + "/journal");
  struct rlimit old {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = size;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const absl::Status ended = j->Ended(*cancelled, false);
  const std::string path = Done(*j, *done, "video-bytes");
  j->Forget("ref");  // as the engine does for a Submit it refuses after journaling it
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
  EXPECT_TRUE(ended.ok()) << ended;
  EXPECT_FALSE(path.empty()) << "the stored result is kept";
  EXPECT_EQ(fs::file_size(dir_ + "/journal"), size) << "nothing could be appended";
  // The ends are known in memory at once: the ids are not pending any more.
  EXPECT_EQ(j->usage().results, 1);
  EXPECT_EQ(j->usage().live, 2);
  j->Maintain(absl::Now());  // the disk has room again: the journal is rewritten
  EXPECT_GT(fs::file_size(dir_ + "/journal"), size);
  j.reset();
  std::vector<RecoveredRequest> rec;
  Open(&rec);
  ASSERT_EQ(rec.size(), 2u) << "the refused Submit does not come back";
  const RecoveredRequest* c = FindId(rec, "cancelled");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->ended);
  EXPECT_EQ(c->status.code(), absl::StatusCode::kCancelled);
  const RecoveredRequest* d = FindId(rec, "done");
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->ended) << "a done request does not run again after a restart";
  EXPECT_TRUE(d->status.ok());
  auto stored = LoadStoredResult(d->result_path, "done");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->blobs[0], "video-bytes");
}

TEST_F(RequestJournalTest, ALargeJournalReplaysLineByLine) {
  // Replay reads a line at a time; a long record and many records come back.
  std::vector<RecoveredRequest> none;
  {
    auto j = Open(&none);
    auto big = Request("big", 1);
    big->params.prompt = std::string(1 << 20, 'p');
    ASSERT_TRUE(j->Submitted(*big).ok());
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(j->Submitted(*Request(absl::StrCat("r", i), i)).ok());
  }
  std::vector<RecoveredRequest> rec;
  Open(&rec);
  ASSERT_EQ(rec.size(), 201u);
  const RecoveredRequest* big = FindId(rec, "big");
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(big->params.prompt.size(), size_t{1} << 20);
}

TEST_F(RequestJournalTest, AnExpiredIdCanBeSubmittedAgain) {
  options_.result_ttl = absl::Seconds(1);
  std::vector<RecoveredRequest> none;
  auto j = Open(&none);
  auto r = Request("again", 1);
  ASSERT_TRUE(j->Submitted(*r).ok());
  ASSERT_TRUE(r->Fail(absl::CancelledError("request cancelled")));
  ASSERT_TRUE(j->Ended(*r, false).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(j->Submitted(*Request("again", 2))));
  absl::SleepFor(absl::Milliseconds(1200));  // expired, though Maintain has not run yet
  EXPECT_TRUE(j->Submitted(*Request("again", 2)).ok());
}

// The engine with a journal: results move to disk, and a new engine recovers the requests.
class EngineRecoveryTest : public RequestJournalTest {
 protected:
  void SetUp() override {
    RequestJournalTest::SetUp();
    fs::create_directories(dir_ + "/a");
    std::ofstream(dir_ + "/a/fake_model.json") << R"({"step_ms": 40, "item_ms": 1})";
    config_.scheduler.max_batch = 2;
    config_.scheduler.max_queue = 2;
    config_.scheduler.max_queue_delay_ms = 1;
    options_.dir = dir_ + "/state";
  }
  void Start(std::vector<RecoveredRequest>* recovered) {
    engine_.reset();
    journal_ = Open(recovered);
    registry_ = std::make_unique<ModelRegistry>(
        &FakeExecutor::FromDir, RegistryOptions{dir_, config_.limits.max_prompt_chars, &compute_});
    ASSERT_TRUE(registry_->LoadInitial("m", dir_ + "/a").ok());
    engine_ =
        std::make_unique<Engine>(config_, registry_.get(), &compute_, nullptr, journal_.get());
  }
  static SubmitOptions Req(const std::string& id, uint64_t seed, int steps) {
    SubmitOptions o;
    o.request_id = id;
    o.params.prompt = "a red ball";
    o.params.seed = seed;
    o.params.steps = steps;
    o.params.width = 32;
    o.params.height = 32;
    o.params.frames = 5;
    return o;
  }
  static RequestPhase WaitDone(const std::shared_ptr<ServeRequest>& r) {
    absl::MutexLock l(&r->mu);
    r->mu.AwaitWithTimeout(
        absl::Condition(
            +[](ServeRequest* x) ABSL_NO_THREAD_SAFETY_ANALYSIS { return x->Terminal(); }, r.get()),
        absl::Seconds(20));
    return r->phase;
  }
  // The video of a finished request, from memory or from its stored file.
  static std::string Video(const std::shared_ptr<ServeRequest>& r) {
    std::string file;
    {
      absl::MutexLock l(&r->mu);
      if (r->result_file.empty()) return r->result->blobs.at(0);
      file = r->result_file;
    }
    auto out = LoadStoredResult(file, r->id);
    return out.ok() ? out->blobs.at(0) : "";
  }
  ServerConfig config_;
  ComputeDevice compute_{/*exclusive=*/true};
  std::unique_ptr<RequestJournal> journal_;
  std::unique_ptr<ModelRegistry> registry_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineRecoveryTest, StoppedRequestsRunAgainAndFinishedOnesAnswerFromDisk) {
  std::vector<RecoveredRequest> rec;
  Start(&rec);
  auto done = engine_->Submit(Req("done", 7, 2));
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(WaitDone(*done), RequestPhase::kDone);
  {
    // Stored before it showed as done; memory keeps only the MIME type.
    absl::MutexLock l(&(*done)->mu);
    EXPECT_FALSE((*done)->result_file.empty());
    EXPECT_TRUE((*done)->result->blobs.empty());
    EXPECT_FALSE((*done)->result->mime.empty());
  }
  const std::string done_video = Video(*done);
  EXPECT_FALSE(done_video.empty());
  // Four long requests: two run, two queue (max_queue 2); a fifth is refused and not journaled.
  std::vector<std::string> ids = {"s1", "s2", "s3", "s4"};
  for (size_t i = 0; i < ids.size(); ++i) {
    auto r = engine_->Submit(Req(ids[i], 100 + i, 40));
    ASSERT_TRUE(r.ok()) << ids[i] << ": " << r.status();
    if (i < 2) {  // wait until it runs, so that s3 and s4 fill the queue
      absl::MutexLock l(&(*r)->mu);
      ASSERT_TRUE((*r)->mu.AwaitWithTimeout(
          absl::Condition(
              +[](ServeRequest* x)
                   ABSL_NO_THREAD_SAFETY_ANALYSIS { return x->phase == RequestPhase::kRunning; },
              r->get()),
          absl::Seconds(10)));
    }
  }
  auto refused = engine_->Submit(Req("s5", 105, 40));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  auto cancelled = engine_->Find("s4");
  ASSERT_TRUE(engine_->Cancel("s4").ok());
  ASSERT_EQ(WaitDone(cancelled), RequestPhase::kCancelled);
  absl::SleepFor(absl::Milliseconds(100));
  engine_.reset();  // Stop: s1-s3 end UNAVAILABLE in memory, but not in the journal
  journal_.reset();

  rec.clear();
  Start(&rec);
  EXPECT_EQ(rec.size(), 5u);  // done, s1-s3 pending, s4 cancelled; s5 never accepted
  EXPECT_EQ(engine_->Recover(rec), 3);
  auto again = engine_->Find("done");
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(WaitDone(again), RequestPhase::kDone);
  EXPECT_EQ(Video(again), done_video);
  auto c = engine_->Find("s4");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(WaitDone(c), RequestPhase::kCancelled);
  EXPECT_EQ(engine_->Find("s5"), nullptr);
  for (size_t i = 0; i < 3; ++i) {
    auto r = engine_->Find(ids[i]);
    ASSERT_NE(r, nullptr) << ids[i];
    ASSERT_EQ(WaitDone(r), RequestPhase::kDone) << ids[i];
    // Same seed, same video as a request that never saw a restart.
    auto solo = engine_->Submit(Req("solo" + ids[i], 100 + i, 40));
    ASSERT_TRUE(solo.ok());
    ASSERT_EQ(WaitDone(*solo), RequestPhase::kDone);
    EXPECT_EQ(Video(r), Video(*solo)) << ids[i];
  }
}

// Get paging of a stored result: the file is read (and checksummed) once for all the parts, not
// once per part; shown by removing the file after the first part: the later parts still come,
// and together they are the video. A whole (unpaged) Get reads the file each time.
TEST_F(EngineRecoveryTest, APagedStoredResultIsReadOncePerRequest) {
  std::vector<RecoveredRequest> rec;
  Start(&rec);
  auto done = engine_->Submit(Req("paged", 7, 2));
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(WaitDone(*done), RequestPhase::kDone);
  const std::string video = Video(*done);
  ASSERT_GT(video.size(), 64u);
  std::string file;
  {
    absl::MutexLock l(&(*done)->mu);
    file = (*done)->result_file;
  }
  GenerationService service(engine_.get(), registry_.get(), nullptr, nullptr);
  auto get = [&](int64_t offset, int64_t max_bytes, v1::GetResponse* resp) {
    grpc::ServerContext ctx;
    v1::GetRequest req;
    req.set_request_id("paged");
    req.set_include_result(true);
    req.set_result_offset(offset);
    req.set_result_max_bytes(max_bytes);
    return service.Get(&ctx, &req, resp);
  };
  v1::GetResponse first;
  ASSERT_TRUE(get(0, 32, &first).ok());
  ASSERT_EQ(first.result_size(), static_cast<int64_t>(video.size()));
  std::string all = first.result();
  ASSERT_TRUE(fs::remove(file));
  while (static_cast<int64_t>(all.size()) < first.result_size()) {
    v1::GetResponse part;
    grpc::Status st = get(static_cast<int64_t>(all.size()), 32, &part);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_FALSE(part.result().empty());
    all += part.result();
  }
  EXPECT_EQ(all, video);
  v1::GetResponse whole;
  EXPECT_EQ(get(0, 0, &whole).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(EngineRecoveryTest, ARestartResolvesWhatTheClientLeftUnsetAgainstTheServingCheckpoint) {
  std::vector<RecoveredRequest> rec;
  Start(&rec);
  // Two long requests run (max_batch 2); the third, which leaves its steps to the model (4
  // here), waits in the queue when the server stops.
  for (const char* id : {"long1", "long2"}) ASSERT_TRUE(engine_->Submit(Req(id, 1, 40)).ok());
  auto x = engine_->Submit(Req("x", 3, 0));
  ASSERT_TRUE(x.ok()) << x.status();
  {
    absl::MutexLock l(&(*x)->mu);
    EXPECT_EQ((*x)->params.steps, 4);
  }
  engine_.reset();
  journal_.reset();
  // The restarted server's checkpoint of the model defaults to 3 steps and allows at most 30.
  std::ofstream(dir_ + "/a/fake_model.json")
      << R"({"step_ms": 40, "item_ms": 1, "default_steps": 3, "max_steps": 30})";
  rec.clear();
  Start(&rec);
  ASSERT_EQ(rec.size(), 3u);
  EXPECT_EQ(engine_->Recover(rec), 1);  // the 40-step ones no longer fit its limits
  auto again = engine_->Find("x");
  ASSERT_NE(again, nullptr);
  ASSERT_EQ(WaitDone(again), RequestPhase::kDone);
  {
    absl::MutexLock l(&again->mu);
    EXPECT_EQ(again->params.steps, 3);  // the serving checkpoint's default, not the old 4
    EXPECT_EQ(again->params.seed, 3u);  // what it asked for is kept
  }
  auto refused = engine_->Find("long1");
  ASSERT_NE(refused, nullptr);
  ASSERT_EQ(WaitDone(refused), RequestPhase::kFailed);
  absl::MutexLock l(&refused->mu);
  EXPECT_EQ(refused->error.code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(EngineRecoveryTest, ARequestWhoseModelIsGoneEndsWithTheReason) {
  std::vector<RecoveredRequest> rec;
  Start(&rec);
  auto r = Req("x", 1, 40);
  ASSERT_TRUE(engine_->Submit(r).ok());
  engine_.reset();
  journal_.reset();
  // The restarted server serves the model under another name.
  rec.clear();
  journal_ = Open(&rec);
  registry_ = std::make_unique<ModelRegistry>(
      &FakeExecutor::FromDir, RegistryOptions{dir_, config_.limits.max_prompt_chars, &compute_});
  ASSERT_TRUE(registry_->LoadInitial("other", dir_ + "/a").ok());
  engine_ = std::make_unique<Engine>(config_, registry_.get(), &compute_, nullptr, journal_.get());
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(engine_->Recover(rec), 0);
  auto x = engine_->Find("x");
  ASSERT_NE(x, nullptr);
  ASSERT_EQ(WaitDone(x), RequestPhase::kFailed);
  {
    absl::MutexLock l(&x->mu);
    EXPECT_EQ(x->error.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(x->error.message().find("cannot run any more"), std::string::npos) << x->error;
    EXPECT_NE(x->error.message().find("'m'"), std::string::npos) << x->error;
  }
  // The failure is journaled: the next restart reports it without trying again.
  engine_.reset();
  journal_.reset();
  rec.clear();
  Open(&rec);
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_TRUE(rec[0].ended);
  EXPECT_EQ(rec[0].status.code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace linvideo::server

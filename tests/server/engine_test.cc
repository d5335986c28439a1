// Engine tests with the fake executor: batching, same-seed determinism in a batch, cancel,
// deadline, queue full, validation, hot swap with in-flight requests, drain.
#include "server/engine.h"

#include <gtest/gtest.h>
#include <prometheus/metric_family.h>

#include <algorithm>
#include <fstream>
#include <functional>

#include "server/fake_executor.h"

namespace linvideo::server {
namespace {

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "/engine_test_" + std::to_string(::getpid());
    std::system(("mkdir -p " + root_ + "/a " + root_ + "/b " + root_ + "/bad").c_str());
    std::ofstream(root_ + "/a/fake_model.json")
        << R"({"step_ms": 5, "item_ms": 1, "fail_start_prompt": "cannot start",)"
           R"("oom_step_prompt": "too big"})";
    std::ofstream(root_ + "/b/fake_model.json") << R"({"step_ms": 5, "item_ms": 1, "salt": 7})";
    std::ofstream(root_ + "/bad/fake_model.json") << "{corrupt";
    config_.models = {{"m", root_ + "/a"}};
    config_.scheduler.max_batch = 4;
    config_.scheduler.max_queue = 6;
    config_.scheduler.max_queue_delay_ms = 30;
    config_.limits.workers = 2;
    config_.limits.max_cost = 100000;
    registry_ = std::make_unique<ModelRegistry>(
        &FakeExecutor::FromDir, RegistryOptions{root_, config_.limits.max_prompt_chars, &compute_});
    ASSERT_TRUE(registry_->LoadInitial("m", root_ + "/a").ok());
    engine_ = std::make_unique<Engine>(config_, registry_.get(), &compute_, &metrics_);
  }
  // Serves a fake model NAME from ROOT/NAME with `json` as its fake_model.json.
  void ServeFake(const std::string& name, const std::string& json) {
    std::system(("mkdir -p " + root_ + "/" + name).c_str());
    std::ofstream(root_ + "/" + name + "/fake_model.json") << json;
    ASSERT_TRUE(registry_->LoadInitial(name, root_ + "/" + name).ok());
  }
  SubmitOptions Req(uint64_t seed, int steps = 4) {
    SubmitOptions o;
    o.params.prompt = "a red ball";
    o.params.seed = seed;
    o.params.steps = steps;
    o.params.width = 32;
    o.params.height = 32;
    o.params.frames = 5;
    return o;
  }
  // Submits each (all must be accepted), in order.
  std::vector<std::shared_ptr<ServeRequest>> SubmitAll(std::initializer_list<SubmitOptions> all) {
    std::vector<std::shared_ptr<ServeRequest>> rs;
    for (const SubmitOptions& o : all) {
      auto r = engine_->Submit(o);
      EXPECT_TRUE(r.ok()) << r.status();
      rs.push_back(r.ok() ? *r : nullptr);
    }
    return rs;
  }
  static RequestPhase WaitDone(const std::shared_ptr<ServeRequest>& r) {
    absl::MutexLock l(&r->mu);
    r->mu.AwaitWithTimeout(
        absl::Condition(
            +[](ServeRequest* x) ABSL_NO_THREAD_SAFETY_ANALYSIS { return x->Terminal(); }, r.get()),
        absl::Seconds(20));
    return r->phase;
  }
  static std::string Result(const std::shared_ptr<ServeRequest>& r) {
    absl::MutexLock l(&r->mu);
    return r->result == nullptr || r->result->blobs.empty() ? "" : r->result->blobs[0];
  }
  // The sum of a metric's series (counters and gauges) whose labels include `label`=`value`
  // (all series when `label` is empty); -1 when the family is not registered.
  double Metric(const std::string& name, const std::string& label = "",
                const std::string& value = "") {
    double sum = -1;
    for (const prometheus::MetricFamily& f : metrics_.registry()->Collect()) {
      if (f.name != name) continue;
      sum = 0;
      for (const prometheus::ClientMetric& m : f.metric) {
        const bool match =
            label.empty() || std::any_of(m.label.begin(), m.label.end(),
                                         [&](const prometheus::ClientMetric::Label& l) {
                                           return l.name == label && l.value == value;
                                         });
        if (match)
          sum += f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
      }
    }
    return sum;
  }
  std::string root_;
  ServerConfig config_;
  Metrics metrics_;
  ComputeDevice compute_{/*exclusive=*/true};
  std::unique_ptr<ModelRegistry> registry_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineTest, BatchedRequestsMatchSoloResults) {
  auto solo = engine_->Submit(Req(42));
  ASSERT_TRUE(solo.ok()) << solo.status();
  ASSERT_EQ(WaitDone(*solo), RequestPhase::kDone);
  std::vector<std::shared_ptr<ServeRequest>> rs;
  for (uint64_t seed : {42, 43, 44, 42}) rs.push_back(*engine_->Submit(Req(seed)));
  for (auto& r : rs) ASSERT_EQ(WaitDone(r), RequestPhase::kDone);
  EXPECT_EQ(Result(rs[0]), Result(*solo));
  EXPECT_EQ(Result(rs[3]), Result(*solo));
  EXPECT_NE(Result(rs[1]), Result(*solo));
  absl::MutexLock l(&rs[0]->mu);
  EXPECT_GT(rs[0]->stats.max_batch, 1);
  EXPECT_FALSE(rs[0]->result->blobs[0].empty());
}

TEST_F(EngineTest, FewStepRequestsBatchApartFromOtherSamplers) {
  std::vector<std::shared_ptr<ServeRequest>> rs;
  for (int i = 0; i < 4; ++i) {
    SubmitOptions o = Req(10 + i);
    if (i % 2 == 0) o.params.sampler = core::params::SamplerKind::kFewStep;
    auto r = engine_->Submit(o);
    ASSERT_TRUE(r.ok()) << r.status();
    rs.push_back(*r);
  }
  int few_step_max = 0;
  for (size_t i = 0; i < rs.size(); ++i) {
    ASSERT_EQ(WaitDone(rs[i]), RequestPhase::kDone);
    absl::MutexLock l(&rs[i]->mu);
    // Same model and shape, but a fewstep request never shares a step with a unipc one.
    EXPECT_LE(rs[i]->stats.max_batch, 2) << i;
    if (i % 2 == 0) few_step_max = std::max(few_step_max, rs[i]->stats.max_batch);
  }
  EXPECT_EQ(few_step_max, 2);  // the two fewstep requests did batch together
}

TEST_F(EngineTest, ARequestThatCannotStartFailsAloneNotItsBatchmates) {
  config_.scheduler.max_queue_delay_ms = 500;  // the three are admitted in one plan
  engine_ = std::make_unique<Engine>(config_, registry_.get(), &compute_, &metrics_);
  SubmitOptions bad = Req(2);
  bad.params.prompt = "cannot start";
  const auto rs = SubmitAll({Req(1), bad, Req(3)});
  for (const auto& r : rs) ASSERT_NE(r, nullptr);
  EXPECT_EQ(WaitDone(rs[0]), RequestPhase::kDone);
  EXPECT_EQ(WaitDone(rs[2]), RequestPhase::kDone);
  ASSERT_EQ(WaitDone(rs[1]), RequestPhase::kFailed);
  absl::MutexLock l(&rs[1]->mu);
  EXPECT_EQ(rs[1]->error.code(), absl::StatusCode::kInternal);
  EXPECT_NE(rs[1]->error.message().find("fake: cannot start"), std::string::npos) << rs[1]->error;
}

TEST_F(EngineTest, FewStepRequestWithoutDistinctSigmasIsRefusedAtSubmit) {
  // 50 evenly spaced timesteps at shift 100: 1000 and 980 both clamp to sigma 0.999.
  SubmitOptions o = Req(1, 50);
  o.params.sampler = core::params::SamplerKind::kFewStep;
  o.params.shift = 100;
  const absl::Status st = engine_->Submit(o).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_NE(st.message().find("sampler fewstep with steps 50 and shift 100 is not allowed"),
            std::string::npos)
      << st;
  EXPECT_NE(st.message().find("repeated sigmas"), std::string::npos) << st;
  o.params.shift = 3;  // the same steps at a usual shift run
  auto r = engine_->Submit(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(WaitDone(*r), RequestPhase::kDone);
}

TEST_F(EngineTest, SubmitRefusesMultiFramePngItCouldNotHandBack) {
  SubmitOptions o = Req(1);
  o.output.kind = OutputKind::kPngFrames;
  const absl::Status st = engine_->Submit(o).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_NE(st.message().find("only streamed by Generate"), std::string::npos) << st;
  o.params.frames = 1;  // one frame is one file: Get can return it
  auto r = engine_->Submit(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(WaitDone(*r), RequestPhase::kDone);
  o = Req(2);
  o.output.kind = OutputKind::kPngFrames;
  o.streaming = true;  // Generate streams every frame
  EXPECT_TRUE(engine_->Submit(o).ok());
}

TEST_F(EngineTest, AStreamingIdWhoseCallEndedCanBeRetried) {
  // generate --id=X --retries=N after a dropped connection: the server cancelled the first call's
  // request when its stream broke; the retry with the same id must run, not ALREADY_EXISTS.
  SubmitOptions o = Req(5, 40);
  o.request_id = "clip-7";
  o.streaming = true;
  auto first = engine_->Submit(o);
  ASSERT_TRUE(first.ok()) << first.status();
  // While the first call's request lives, the id is taken (by a Generate or a Submit).
  EXPECT_EQ(engine_->Submit(o).status().code(), absl::StatusCode::kAlreadyExists);
  engine_->Cancel(**first);
  ASSERT_EQ(WaitDone(*first), RequestPhase::kCancelled);
  // A retry that is refused leaves the ended request in place.
  SubmitOptions bad = o;
  bad.params.width = 33;
  EXPECT_EQ(engine_->Submit(bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->Find("clip-7"), *first);
  SubmitOptions polled = o;
  polled.streaming = false;  // a Submit never takes a streaming request's id
  EXPECT_EQ(engine_->Submit(polled).status().code(), absl::StatusCode::kAlreadyExists);
  o.params.steps = 4;
  auto retry = engine_->Submit(o);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_NE(retry->get(), first->get());
  EXPECT_EQ(engine_->Find("clip-7"), *retry);
  // The dropped call, still winding down, cancels its own request only: not the retry.
  engine_->Cancel(**first);
  EXPECT_EQ(WaitDone(*retry), RequestPhase::kDone);
  EXPECT_EQ(engine_->Find("clip-7"), *retry);
  // Done and delivered: the id stays taken.
  EXPECT_EQ(engine_->Submit(o).status().code(), absl::StatusCode::kAlreadyExists);
  // Done after its call ended (the cancel came too late, the request was finishing): the video
  // never reached the client, so a retry runs again instead of ALREADY_EXISTS until the TTL.
  {
    absl::MutexLock l(&(*retry)->mu);
    (*retry)->abandoned = true;  // what the Generate handler records when its call ends early
  }
  auto again = engine_->Submit(o);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_NE(again->get(), retry->get());
  EXPECT_EQ(WaitDone(*again), RequestPhase::kDone);
}

TEST_F(EngineTest, FinishedRequestsBeyondTheCapAreForgottenOldestFirst) {
  engine_.reset();
  config_.limits.max_finished_requests = 3;
  engine_ = std::make_unique<Engine>(config_, registry_.get(), &compute_, &metrics_);
  std::vector<std::string> ids;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    auto r = engine_->Submit(Req(seed, 1));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(WaitDone(*r), RequestPhase::kDone);
    ids.push_back((*r)->id);
  }
  // The engine trims its table about once a second.
  const absl::Time until = absl::Now() + absl::Seconds(10);
  while (engine_->Find(ids[1]) != nullptr && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(engine_->Find(ids[0]), nullptr);
  EXPECT_EQ(engine_->Find(ids[1]), nullptr);
  for (int i = 2; i < 5; ++i) EXPECT_NE(engine_->Find(ids[i]), nullptr) << ids[i];
  // Operators see it: linvideo_requests_forgotten_total and linvideo_finished_requests.
  EXPECT_EQ(Metric("linvideo_requests_forgotten_total"), 2);
  EXPECT_EQ(Metric("linvideo_finished_requests", "what", "count"), 3);
  auto again = engine_->Submit([&] {
    SubmitOptions o = Req(9, 1);
    o.request_id = ids[0];  // a forgotten id is free again
    return o;
  }());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(WaitDone(*again), RequestPhase::kDone);
}

TEST_F(EngineTest, NothingNewStartsWhileTheDecodeBacklogIsFull) {
  // Steps of 1 ms, decodes of 60 ms on one worker: without backpressure every request would
  // finish its steps at once and wait for its decode holding its latents.
  engine_.reset();
  ServeFake("fast", R"({"step_ms": 1, "item_ms": 0, "decode_ms": 60})");
  config_.scheduler.max_batch = 1;
  config_.scheduler.max_queue = 10;
  config_.limits.workers = 1;
  engine_ = std::make_unique<Engine>(config_, registry_.get(), &compute_, &metrics_);
  std::vector<std::shared_ptr<ServeRequest>> rs;
  for (uint64_t seed = 0; seed < 6; ++seed) {
    SubmitOptions o = Req(seed, 1);
    o.model = "fast";
    auto r = engine_->Submit(o);
    ASSERT_TRUE(r.ok()) << r.status();
    rs.push_back(*r);
  }
  int most = 0;
  for (bool all_done = false; !all_done;) {
    int finishing = 0;
    all_done = true;
    for (auto& r : rs) {
      absl::MutexLock l(&r->mu);
      finishing += r->phase == RequestPhase::kFinishing;
      all_done = all_done && r->Terminal();
    }
    most = std::max(most, finishing);
    absl::SleepFor(absl::Milliseconds(2));
  }
  for (auto& r : rs) EXPECT_EQ(WaitDone(r), RequestPhase::kDone);
  EXPECT_LE(most, 2) << "max_batch + workers";
  EXPECT_GE(most, 1);
}

TEST_F(EngineTest, AStepThatFailsEndsOnlyTheRequestThatFailsAlone) {
  config_.scheduler.max_queue_delay_ms = 500;  // the three are admitted and stepped together
  engine_ = std::make_unique<Engine>(config_, registry_.get(), &compute_, &metrics_);
  SubmitOptions bad = Req(2);
  bad.params.prompt = "too big";  // the fake's step runs out of memory on any batch holding it
  const auto rs = SubmitAll({Req(1), bad, Req(3)});
  for (const auto& r : rs) ASSERT_NE(r, nullptr);
  EXPECT_EQ(WaitDone(rs[0]), RequestPhase::kDone);
  EXPECT_EQ(WaitDone(rs[2]), RequestPhase::kDone);
  ASSERT_EQ(WaitDone(rs[1]), RequestPhase::kFailed);
  {
    // A device out-of-memory stays RESOURCE_EXHAUSTED (not INTERNAL): retry later, or smaller.
    absl::MutexLock l(&rs[1]->mu);
    EXPECT_EQ(rs[1]->error.code(), absl::StatusCode::kResourceExhausted) << rs[1]->error;
    EXPECT_NE(rs[1]->error.message().find("out of memory"), std::string::npos) << rs[1]->error;
  }
  EXPECT_GE(Metric("linvideo_batch_splits_total", "stage", "step"), 1);
  // A request that fails alone is that request's fault: no step limit is learned from it.
  EXPECT_LE(Metric("linvideo_step_token_limit"), 0);
}

TEST_F(EngineTest, ABatchTooLargeForTheDeviceIsSteppedOneByOne) {
  engine_.reset();
  ServeFake("small", R"({"step_ms": 5, "item_ms": 1, "max_step_batch": 1})");
  config_.scheduler.max_queue_delay_ms = 500;
  engine_ = std::make_unique<Engine>(config_, registry_.get(), &compute_, &metrics_);
  auto submit = [&](uint64_t seed) {
    SubmitOptions o = Req(seed, 8);
    o.model = "small";
    auto r = engine_->Submit(o);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : nullptr;
  };
  std::vector<std::string> solo;
  for (uint64_t seed : {5, 6, 7}) {
    auto r = submit(seed);
    ASSERT_NE(r, nullptr);
    ASSERT_EQ(WaitDone(r), RequestPhase::kDone);
    solo.push_back(Result(r));
  }
  EXPECT_EQ(Metric("linvideo_batch_splits_total", "stage", "step"), 0);
  std::vector<std::shared_ptr<ServeRequest>> rs;
  for (uint64_t seed : {5, 6, 7}) rs.push_back(submit(seed));
  for (size_t i = 0; i < rs.size(); ++i) {
    ASSERT_NE(rs[i], nullptr);
    ASSERT_EQ(WaitDone(rs[i]), RequestPhase::kDone) << i;
    EXPECT_EQ(Result(rs[i]), solo[i]) << i;  // the same video as alone
  }
  // The first batched steps ran out of memory and were run one by one; after each, the model's
  // steps were held below that batch's tokens (3 together, then 2, then 1 at a time), so not
  // every one of the 8 steps pays a failed batched attempt.
  const double splits = Metric("linvideo_batch_splits_total", "stage", "step");
  EXPECT_GE(splits, 1);
  EXPECT_LE(splits, 2);
  const int64_t tokens = rs[0]->entry.tokens;
  EXPECT_EQ(Metric("linvideo_step_token_limit", "model", "small"), 2 * tokens - 1);
}

// The learned limit is probed again: after limit_probe_steps clean steps the two requests are
// batched again, fail together, and the limit that held is back at once (one failed batched step
// per probe, not a failed step every time).
TEST_F(EngineTest, ALearnedStepLimitIsProbedAgainAfterCleanSteps) {
  engine_.reset();
  ServeFake("small", R"({"step_ms": 2, "item_ms": 1, "max_step_batch": 1})");
  config_.scheduler.max_queue_delay_ms = 500;  // both start together
  config_.scheduler.limit_probe_steps = 4;
  engine_ = std::make_unique<Engine>(config_, registry_.get(), &compute_, &metrics_);
  SubmitOptions a = Req(5, 40), b = Req(6, 40);
  a.model = b.model = "small";
  const auto rs = SubmitAll({a, b});
  for (const auto& r : rs) ASSERT_EQ(WaitDone(r), RequestPhase::kDone);
  // 80 request-steps, one at a time after the first failure: a probe after every 4 clean steps
  // (each fails and restores the limit), so about 80 / 5 = 16 failed batched steps; without the
  // limit every one of the ~40 steps would fail batched, without the probes just 1.
  const double splits = Metric("linvideo_batch_splits_total", "stage", "step");
  EXPECT_GE(splits, 8);
  EXPECT_LE(splits, 20);
  EXPECT_EQ(Metric("linvideo_step_token_limit", "model", "small"), 2 * rs[0]->entry.tokens - 1);
}

TEST_F(EngineTest, QueueGaugesMoveAtSubmitNotOnlyBetweenSteps) {
  engine_.reset();
  ServeFake("slow", R"({"step_ms": 400, "item_ms": 0})");
  config_.scheduler.max_batch = 1;
  engine_ = std::make_unique<Engine>(config_, registry_.get(), &compute_, &metrics_);
  auto queue_depth = [&] { return Metric("linvideo_queue_depth"); };
  SubmitOptions o = Req(1, 5);
  o.model = "slow";
  auto first = engine_->Submit(o);
  ASSERT_TRUE(first.ok()) << first.status();
  {
    absl::MutexLock l(&(*first)->mu);
    (*first)->mu.AwaitWithTimeout(absl::Condition(
                                      +[](ServeRequest* x) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                        return x->phase == RequestPhase::kRunning;
                                      },
                                      first->get()),
                                  absl::Seconds(10));
  }
  absl::SleepFor(absl::Milliseconds(50));  // inside its first 400 ms step
  for (uint64_t seed : {2, 3}) {
    o.params.seed = seed;
    ASSERT_TRUE(engine_->Submit(o).ok());
  }
  EXPECT_EQ(queue_depth(), 2) << "published by Submit, not after the running step";
  engine_->Cancel(**first);
}

TEST_F(EngineTest, EachModelIsHeldToItsOwnStepBudget) {
  engine_.reset();
  config_.scheduler.token_budget = 10;  // the smallest model's (every other model's fallback)
  config_.scheduler.model_token_budgets = {{"m", 1000000}};
  ASSERT_TRUE(registry_->LoadInitial("other", root_ + "/b").ok());
  engine_ = std::make_unique<Engine>(config_, registry_.get(), &compute_, &metrics_);
  auto r = engine_->Submit(Req(1));
  ASSERT_TRUE(r.ok()) << r.status();             // within m's own budget, over the fallback
  EXPECT_EQ((*r)->entry.token_budget, 1000000);  // and batched against it (scheduler_test)
  EXPECT_EQ(WaitDone(*r), RequestPhase::kDone);
  SubmitOptions o = Req(1);
  o.model = "other";
  auto refused = engine_->Submit(o);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("model other's step budget is 10"), std::string::npos)
      << refused.status();
}

TEST_F(EngineTest, ValidationErrors) {
  SubmitOptions o = Req(1);
  o.params.width = 33;
  EXPECT_EQ(engine_->Submit(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Req(1);
  o.params.frames = 6;
  auto st = engine_->Submit(o).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("4k+1"), std::string::npos) << st;
  o = Req(1);
  o.params.prompt = "";
  EXPECT_EQ(engine_->Submit(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Req(1);
  o.model = "nope";
  EXPECT_EQ(engine_->Submit(o).status().code(), absl::StatusCode::kNotFound);
  o = Req(1, 50);
  o.params.width = o.params.height = 256;
  o.params.frames = 33;
  EXPECT_EQ(engine_->Submit(o).status().code(), absl::StatusCode::kResourceExhausted);
}

// The fake executor's requests are resolved by the same core::params::Resolve as the real model's,
// with the server's caps applied, so these are the messages clients of either executor see.
TEST_F(EngineTest, ValidationMessagesComeFromTheOneResolve) {
  struct Case {
    std::function<void(SubmitOptions&)> mutate;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {[](SubmitOptions& o) { o.params.prompt = std::string(2001, 'a'); },
       "prompt is 2001 characters; this server accepts at most 2000 (limits.max_prompt_chars)"},
      // Counted in characters, not bytes (6,003 bytes here).
      {[](SubmitOptions& o) {
         std::string s;
         for (int i = 0; i < 2001; ++i) s += "\xE5\x8B\x95";  // U+52D5
         o.params.prompt = s;
       },
       "prompt is 2001 characters"},
      {[](SubmitOptions& o) { o.params.guidance = -2; }, "guidance -2 is not allowed; use 0..20"},
      {[](SubmitOptions& o) { o.params.shift = -1; }, "shift -1 is not allowed"},
      {[](SubmitOptions& o) { o.params.width = -32; }, "width -32 is not allowed"},
      {[](SubmitOptions& o) { o.params.steps = 51; }, "steps 51 is not allowed; use 1..50"},
      {[](SubmitOptions& o) { o.output.fps = 61; }, "fps 61 is not allowed; use 1..60"},
      {[](SubmitOptions& o) { o.request_id = "a b"; }, "use 1-64 characters"},
  };
  for (const Case& c : cases) {
    SubmitOptions o = Req(1);
    c.mutate(o);
    const absl::Status st = engine_->Submit(o).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.expect;
    EXPECT_NE(st.message().find(c.expect), std::string::npos) << st;
  }
  // Unset fields take the model's defaults (fake_model.json: 32x32, 5 frames, 4 steps).
  SubmitOptions o;
  o.params.prompt = "defaults";
  auto r = engine_->Submit(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->params.width, 32);
  EXPECT_EQ((*r)->params.steps, 4);
  EXPECT_DOUBLE_EQ((*r)->params.guidance, 5.0);
  EXPECT_EQ((*r)->output.fps, kDefaultFps);
  EXPECT_EQ(WaitDone(*r), RequestPhase::kDone);
  // 1,900 three-byte characters (5,700 bytes) are within the 2,000-character cap.
  o.params.prompt.clear();
  for (int i = 0; i < 1900; ++i) o.params.prompt += "\xE5\x8B\x95";
  EXPECT_TRUE(engine_->Submit(o).ok());
}

TEST_F(EngineTest, QueueFullCancelAndDeadline) {
  engine_->Pause(false);
  std::vector<std::shared_ptr<ServeRequest>> rs;
  absl::Status full;
  for (int i = 0; i < 20 && full.ok(); ++i) {
    auto r = engine_->Submit(Req(i, 40));
    if (r.ok())
      rs.push_back(*r);
    else
      full = r.status();
  }
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  const double queued = Metric("linvideo_queue_depth");
  ASSERT_TRUE(engine_->Cancel(rs.back()->id).ok());
  {
    // Queued, not started: it ends within the Cancel call, not at the end of the running step.
    absl::MutexLock l(&rs.back()->mu);
    EXPECT_EQ(rs.back()->phase, RequestPhase::kCancelled);
  }
  EXPECT_LE(Metric("linvideo_queue_depth"), queued - 1);  // (another may start meanwhile)
  SubmitOptions o = Req(99);
  o.deadline = absl::Now() + absl::Milliseconds(50);
  auto late = engine_->Submit(o);
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(WaitDone(*late), RequestPhase::kFailed);
  {
    absl::MutexLock l(&(*late)->mu);
    EXPECT_EQ((*late)->error.code(), absl::StatusCode::kDeadlineExceeded);
    EXPECT_EQ((*late)->step, 0);  // never started
  }
  ASSERT_TRUE(engine_->Cancel(rs[0]->id).ok());  // running: stops within a step
  EXPECT_EQ(WaitDone(rs[0]), RequestPhase::kCancelled);
  EXPECT_EQ(rs[0]->model, nullptr);  // an aborted request lets its checkpoint go too
}

TEST_F(EngineTest, HotSwapKeepsInflightOnOldModelAndRefusesCorrupt) {
  auto before = *engine_->Submit(Req(5, 10));
  EXPECT_EQ(registry_->Load("m", "bad").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(registry_->Load("m", "../../etc").status().code(), absl::StatusCode::kPermissionDenied);
  auto loaded = registry_->Load("m", "b");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto after = *engine_->Submit(Req(5, 10));
  ASSERT_EQ(WaitDone(before), RequestPhase::kDone);
  ASSERT_EQ(WaitDone(after), RequestPhase::kDone);
  EXPECT_EQ(before->model_version, 1);
  EXPECT_EQ(after->model_version, 2);
  // Finished requests (kept for Get until their TTL) no longer pin a checkpoint: only the
  // registry's history decides what stays loaded.
  EXPECT_EQ(before->model, nullptr);
  EXPECT_EQ(after->model, nullptr);
  EXPECT_NE(Result(before), Result(after));  // different checkpoints (salt)
  ASSERT_TRUE(registry_->Rollback("m").ok());
  auto rolled = *engine_->Submit(Req(5, 10));
  ASSERT_EQ(WaitDone(rolled), RequestPhase::kDone);
  EXPECT_EQ(Result(rolled), Result(before));
}

TEST_F(EngineTest, ARollbackMovesRequestsQueuedOnTheBadCheckpoint) {
  engine_.reset();
  config_.scheduler.max_batch = 1;  // one runs, the others wait in the queue
  engine_ = std::make_unique<Engine>(config_, registry_.get(), &compute_, &metrics_);
  auto v1 = *engine_->Submit(Req(5, 4));  // the rolled-back-to checkpoint's videos, for reference
  ASSERT_EQ(WaitDone(v1), RequestPhase::kDone);
  // v2 has other defaults and limits: 3 steps by default, up to 60.
  std::system(("mkdir -p " + root_ + "/b2").c_str());
  std::ofstream(root_ + "/b2/fake_model.json")
      << R"({"step_ms": 5, "item_ms": 1, "salt": 7, "default_steps": 3, "max_steps": 60})";
  ASSERT_TRUE(registry_->Load("m", "b2").ok());
  auto running = *engine_->Submit(Req(6, 50));  // starts on v2 and runs ~0.3 s
  {
    absl::MutexLock l(&running->mu);
    running->mu.AwaitWithTimeout(absl::Condition(
                                     +[](ServeRequest* x) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                       return x->phase != RequestPhase::kQueued;
                                     },
                                     running.get()),
                                 absl::Seconds(20));
  }
  SubmitOptions asked = Req(5, 3);
  asked.params.steps = 0;  // the checkpoint's default: 3 on v2, 4 on v1
  auto queued = *engine_->Submit(asked);
  auto other = *engine_->Submit(Req(7, 3));
  auto too_long = *engine_->Submit(Req(8, 55));  // v2 allows 55 steps, v1 at most 50
  EXPECT_EQ(queued->model_version, 2);
  {
    absl::MutexLock l(&queued->mu);
    EXPECT_EQ(queued->params.steps, 3);
  }
  int64_t from = 0;
  auto restored = registry_->Rollback("m", &from);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(from, 2);
  EXPECT_EQ(engine_->MoveQueued(from, *restored), 2);
  EXPECT_EQ(engine_->MoveQueued(from, *restored), 0);  // nothing left on v2 that may move
  // Nothing new runs on the rolled-back checkpoint: what the restored one refuses ends.
  ASSERT_EQ(WaitDone(too_long), RequestPhase::kFailed);
  {
    absl::MutexLock l(&too_long->mu);
    EXPECT_EQ(too_long->error.code(), absl::StatusCode::kFailedPrecondition) << too_long->error;
    EXPECT_NE(too_long->error.message().find("was rolled back before the request started"),
              std::string::npos)
        << too_long->error;
  }
  for (const auto& r : {running, queued, other}) ASSERT_EQ(WaitDone(r), RequestPhase::kDone);
  EXPECT_EQ(running->model_version, 2);  // started before the rollback: finishes where it began
  EXPECT_EQ(queued->model_version, 1);
  EXPECT_EQ(other->model_version, 1);
  {
    absl::MutexLock l(&queued->mu);
    EXPECT_EQ(queued->params.steps, 4);
  }
  EXPECT_EQ(Result(queued), Result(v1));  // the restored checkpoint's video
}

TEST_F(EngineTest, DrainRefusesNewWorkAndFinishesInflight) {
  auto r = *engine_->Submit(Req(1));
  engine_->Drain();
  EXPECT_EQ(engine_->Submit(Req(2)).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(engine_->WaitIdle(absl::Seconds(20)), 0);
  EXPECT_EQ(WaitDone(r), RequestPhase::kDone);
}

TEST_F(EngineTest, StopFailsUnfinishedRequestsAndRefusesNewOnes) {
  auto r = *engine_->Submit(Req(1, 40));
  engine_->Stop();
  EXPECT_EQ(WaitDone(r), RequestPhase::kFailed);
  {
    absl::MutexLock l(&r->mu);
    EXPECT_EQ(r->error.code(), absl::StatusCode::kUnavailable) << r->error;
  }
  const absl::Status late = engine_->Submit(Req(2)).status();
  EXPECT_EQ(late.code(), absl::StatusCode::kUnavailable) << late;
  EXPECT_EQ(engine_->Outstanding(), 0);
}

}  // namespace
}  // namespace linvideo::server

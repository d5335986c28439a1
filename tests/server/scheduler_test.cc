#include "server/scheduler.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace linvideo::server {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);

BucketKey Key(int64_t width, const std::string& model = "m", int64_t version = 1) {
  BucketKey k;
  k.model = model;
  k.version = version;
  k.width = width;
  k.height = 32;
  k.frames = 5;
  k.cfg = true;
  return k;
}

class SchedulerTest : public ::testing::Test {
 protected:
  SchedEntry* Add(Scheduler& s, BucketKey key, absl::Time at, int priority = 1,
                  int64_t tokens = 1) {
    auto e = std::make_unique<SchedEntry>();
    e->key = std::move(key);
    e->priority = priority;
    e->tokens = tokens;
    e->enqueued = at;
    EXPECT_TRUE(s.Enqueue(e.get()).ok());
    entries_.push_back(std::move(e));
    return entries_.back().get();
  }
  // Completes every entry of the batch whose step count reached `steps`.
  std::vector<std::unique_ptr<SchedEntry>> entries_;
};

SchedulerOptions Opts(int max_batch = 4, absl::Duration delay = absl::Milliseconds(10)) {
  SchedulerOptions o;
  o.max_batch = max_batch;
  o.max_queue_delay = delay;
  o.starvation_age = absl::Seconds(10);
  return o;
}

TEST_F(SchedulerTest, HoldsBatchOpenUntilDelayThenRuns) {
  Scheduler s(Opts(4, absl::Milliseconds(50)));
  SchedEntry* a = Add(s, Key(32), kT0);
  Plan p = s.Next(kT0 + absl::Milliseconds(10));
  EXPECT_TRUE(p.empty());
  EXPECT_EQ(p.wake_at, kT0 + absl::Milliseconds(50));
  SchedEntry* b = Add(s, Key(32), kT0 + absl::Milliseconds(20));
  p = s.Next(kT0 + absl::Milliseconds(50));
  ASSERT_EQ(p.batch.size(), 2u);
  EXPECT_EQ(p.admit, (std::vector<SchedEntry*>{a, b}));
  EXPECT_TRUE(a->running() && b->running());
}

TEST_F(SchedulerTest, FullBatchRunsWithoutWaiting) {
  Scheduler s(Opts(2, absl::Seconds(10)));
  Add(s, Key(32), kT0);
  Add(s, Key(32), kT0);
  Add(s, Key(32), kT0);
  Plan p = s.Next(kT0);
  EXPECT_EQ(p.batch.size(), 2u);  // capped at max_batch
  EXPECT_EQ(s.queued(), 1);
  EXPECT_EQ(s.running(), 2);
}

TEST_F(SchedulerTest, BucketsSeparateShapesModelsAndVersions) {
  Scheduler s(Opts(8, absl::ZeroDuration()));
  SchedEntry* a = Add(s, Key(32), kT0);
  Add(s, Key(48), kT0 + absl::Milliseconds(1));
  Add(s, Key(32, "other"), kT0 + absl::Milliseconds(2));
  Add(s, Key(32, "m", 2), kT0 + absl::Milliseconds(3));
  SchedEntry* e = Add(s, Key(32), kT0 + absl::Milliseconds(4));
  BucketKey nocfg = Key(32);
  nocfg.cfg = false;
  Add(s, nocfg, kT0 + absl::Milliseconds(5));
  Plan p = s.Next(kT0 + absl::Milliseconds(10));
  EXPECT_EQ(p.batch, (std::vector<SchedEntry*>{a, e}));
  for (SchedEntry* x : p.batch) EXPECT_EQ(x->key, a->key);
}

TEST_F(SchedulerTest, NewRequestsJoinRunningBucketAtStepBoundary) {
  Scheduler s(Opts(4, absl::Seconds(100)));
  SchedEntry* a = Add(s, Key(32), kT0);
  SchedEntry* b = Add(s, Key(32), kT0);
  SchedEntry* c = Add(s, Key(32), kT0);
  SchedEntry* d = Add(s, Key(32), kT0);
  Plan p = s.Next(kT0);
  ASSERT_EQ(p.batch.size(), 4u);
  s.Finish(a);  // a finished after this step; a slot opens
  SchedEntry* late = Add(s, Key(32), kT0 + absl::Seconds(1));
  // The running bucket is ready, so the newcomer joins at once despite max_queue_delay.
  p = s.Next(kT0 + absl::Seconds(1));
  EXPECT_EQ(p.admit, std::vector<SchedEntry*>{late});
  EXPECT_EQ(p.batch, (std::vector<SchedEntry*>{b, c, d, late}));
}

TEST_F(SchedulerTest, HigherPriorityGoesFirstAndPositionsFollow) {
  Scheduler s(Opts(1, absl::ZeroDuration()));
  SchedEntry* low = Add(s, Key(32), kT0, /*priority=*/0);
  SchedEntry* normal = Add(s, Key(48), kT0, 1);
  SchedEntry* high = Add(s, Key(64), kT0 + absl::Seconds(1), 2);
  const absl::Time now = kT0 + absl::Seconds(1);
  EXPECT_EQ(s.Position(high, now), 1);
  EXPECT_EQ(s.Position(normal, now), 2);
  EXPECT_EQ(s.Position(low, now), 3);
  EXPECT_EQ(s.QueuedByPriority(), (std::array<int, 3>{1, 1, 1}));
  Plan p = s.Next(now);
  EXPECT_EQ(p.batch, std::vector<SchedEntry*>{high});
  EXPECT_EQ(s.Position(high, now), 0);
  EXPECT_EQ(s.Position(normal, now), 1);
}

TEST_F(SchedulerTest, RunningRequestsAcrossBucketsStayWithinMaxBatch) {
  // Two running in one bucket; a better-scoring bucket may step, but only 1 more may start.
  Scheduler s(Opts(3, absl::ZeroDuration()));
  SchedEntry* a = Add(s, Key(32), kT0);
  SchedEntry* b = Add(s, Key(32), kT0);
  Plan p = s.Next(kT0);
  ASSERT_EQ(p.batch, (std::vector<SchedEntry*>{a, b}));
  SchedEntry* h1 = Add(s, Key(48), kT0, /*priority=*/2);
  SchedEntry* h2 = Add(s, Key(48), kT0, 2);
  p = s.Next(kT0 + absl::Seconds(1));
  EXPECT_EQ(p.admit, std::vector<SchedEntry*>{h1});
  EXPECT_EQ(s.running(), 3);
  // At the cap the waiting bucket's queue does not start; the running buckets step.
  SchedEntry* h3 = Add(s, Key(64), kT0, 2);
  for (int i = 0; i < 5; ++i) {
    p = s.Next(kT0 + absl::Seconds(2 + i));
    EXPECT_TRUE(p.admit.empty());
    ASSERT_FALSE(p.batch.empty());
    for (SchedEntry* x : p.batch) EXPECT_TRUE(x == a || x == b || x == h1);
  }
  EXPECT_FALSE(h2->running());
  EXPECT_FALSE(h3->running());
  s.Finish(h1);  // a slot opens: the best waiting request starts, unless the caller holds starts
  p = s.Next(kT0 + absl::Seconds(10), /*may_start=*/false);
  EXPECT_TRUE(p.admit.empty());
  EXPECT_FALSE(p.batch.empty()) << "running requests still step";
  p = s.Next(kT0 + absl::Seconds(10));
  EXPECT_EQ(p.admit.size(), 1u);
  EXPECT_EQ(s.running(), 3);
}

TEST_F(SchedulerTest, LowPriorityIsNotStarved) {
  // A steady stream of fresh high-priority requests (different bucket) cannot hold back an old
  // low-priority one for longer than 2 * starvation_age.
  Scheduler s(Opts(1, absl::ZeroDuration()));
  SchedEntry* low = Add(s, Key(32), kT0, 0);
  absl::Time now = kT0;
  bool low_ran = false;
  for (int i = 0; i < 100 && !low_ran; ++i) {
    now += absl::Seconds(1);
    Add(s, Key(48), now, 2);
    Plan p = s.Next(now);
    ASSERT_EQ(p.batch.size(), 1u);
    if (p.batch[0] == low) {
      low_ran = true;
    }
    s.Finish(p.batch[0]);
  }
  EXPECT_TRUE(low_ran);
  EXPECT_LE(now - kT0, absl::Seconds(21));
  EXPECT_GE(now - kT0, absl::Seconds(19));  // but high priority did win until then
}

TEST_F(SchedulerTest, CancelledDroppedWithinOneStep) {
  Scheduler s(Opts(4, absl::ZeroDuration()));
  SchedEntry* a = Add(s, Key(32), kT0);
  SchedEntry* b = Add(s, Key(32), kT0);
  SchedEntry* q = Add(s, Key(48), kT0);
  Plan p = s.Next(kT0);
  ASSERT_EQ(p.batch.size(), 2u);
  s.Cancel(a);  // running
  s.Cancel(q);  // queued
  p = s.Next(kT0);
  EXPECT_EQ(p.dropped, (std::vector<SchedEntry*>{a, q}));
  EXPECT_EQ(p.batch, std::vector<SchedEntry*>{b});
  EXPECT_EQ(s.queued(), 0);
}

TEST_F(SchedulerTest, ExpiredRequestsNeverStart) {
  Scheduler s(Opts(4, absl::Milliseconds(100)));
  SchedEntry* a = Add(s, Key(32), kT0);
  a->deadline = kT0 + absl::Milliseconds(30);
  Plan p = s.Next(kT0);
  EXPECT_TRUE(p.empty());
  EXPECT_EQ(p.wake_at, a->deadline);  // wakes for the deadline before the batch delay
  p = s.Next(kT0 + absl::Milliseconds(30));
  EXPECT_EQ(p.dropped, std::vector<SchedEntry*>{a});
  EXPECT_TRUE(p.admit.empty());
  EXPECT_TRUE(s.idle());
}

TEST_F(SchedulerTest, TokenBudgetCapsBatch) {
  SchedulerOptions o = Opts(8, absl::Seconds(100));
  o.token_budget = 250;
  Scheduler s(o);
  Add(s, Key(32), kT0, 1, 100);
  Add(s, Key(32), kT0, 1, 100);
  Add(s, Key(32), kT0, 1, 100);  // budget reached by the queue -> ready without waiting
  Plan p = s.Next(kT0);
  EXPECT_EQ(p.batch.size(), 2u);  // 300 > 250
  EXPECT_EQ(s.queued(), 1);
}

TEST_F(SchedulerTest, EachModelsOwnTokenBudgetCapsItsBatch) {
  SchedulerOptions o = Opts(8, absl::Seconds(100));
  o.token_budget = 250;  // the server's, for models without their own
  Scheduler s(o);
  for (int i = 0; i < 3; ++i) Add(s, Key(32, "cheap"), kT0, 1, 100)->token_budget = 1000;
  Plan p = s.Next(kT0 + absl::Seconds(101));
  EXPECT_EQ(p.batch.size(), 3u);  // 300 within cheap's own 1000, though over the server's 250
  for (SchedEntry* e : p.batch) s.Finish(e);
  for (int i = 0; i < 3; ++i) Add(s, Key(32, "dear"), kT0, 1, 100)->token_budget = 150;
  p = s.Next(kT0);
  EXPECT_EQ(p.batch.size(), 1u);  // 200 > dear's 150; its queue reached the budget: no wait
}

TEST_F(SchedulerTest, RunningRequestsOverALoweredLimitTakeTurns) {
  SchedulerOptions o = Opts(8, absl::ZeroDuration());
  o.limit_probe_steps = 3;
  Scheduler s(o);
  std::vector<SchedEntry*> run;
  for (int i = 0; i < 4; ++i) run.push_back(Add(s, Key(32), kT0, 1, 100));
  Plan p = s.Next(kT0);
  ASSERT_EQ(p.batch.size(), 4u);
  // The batch of 400 tokens ran out of memory: 399 at most, for this bucket only.
  EXPECT_EQ(s.LimitSteps(Key(32), 399), 399);
  EXPECT_EQ(s.LimitSteps(Key(32), 500), 399);  // only lowers
  EXPECT_EQ(s.StepLimit(Key(32)), 399);
  EXPECT_EQ(s.StepLimit(Key(32, "m", 2)), 0);          // another checkpoint
  EXPECT_EQ(s.StepLimit(Key(48)), 0);                  // another shape
  SchedEntry* waiting = Add(s, Key(32), kT0, 2, 100);  // high priority, same bucket
  // Three step, then the one left out first: every running request steps within two plans, and
  // nothing joins while they do not all fit.
  std::vector<int> stepped(4, 0);
  for (int plan = 0; plan < 4; ++plan) {
    p = s.Next(kT0 + absl::Milliseconds(plan));
    EXPECT_EQ(p.batch.size(), 3u) << plan;
    EXPECT_TRUE(p.admit.empty()) << plan;
    for (SchedEntry* e : p.batch) {
      for (int i = 0; i < 4; ++i) stepped[i] += e == run[i] ? 1 : 0;
    }
  }
  for (int i = 0; i < 4; ++i) EXPECT_EQ(stepped[i], 3) << i;  // 12 steps shared evenly
  EXPECT_FALSE(waiting->running());
  // Two finish: the two left fit with the waiting one (300 <= 399).
  s.Finish(run[0]);
  s.Finish(run[1]);
  p = s.Next(kT0 + absl::Seconds(1));
  EXPECT_EQ(p.batch.size(), 3u);
  EXPECT_EQ(p.admit, (std::vector<SchedEntry*>{waiting}));
  // Another checkpoint of the model is not held to it.
  for (SchedEntry* e : std::vector<SchedEntry*>(s.entries())) s.Finish(e);
  for (int i = 0; i < 4; ++i) Add(s, Key(32, "m", 2), kT0, 1, 100);
  EXPECT_EQ(s.Next(kT0 + absl::Seconds(2)).batch.size(), 4u);
  // limit_probe_steps clean steps lift the limit (a new failure sets it again); other buckets'
  // steps do not count.
  EXPECT_FALSE(s.CleanStep(Key(32, "m", 2)));
  EXPECT_FALSE(s.CleanStep(Key(32)));
  EXPECT_FALSE(s.CleanStep(Key(32)));
  EXPECT_EQ(s.LimitSteps(Key(32), 399), 399);  // restarts the count
  EXPECT_FALSE(s.CleanStep(Key(32)));
  EXPECT_FALSE(s.CleanStep(Key(32)));
  EXPECT_TRUE(s.CleanStep(Key(32)));
  EXPECT_EQ(s.StepLimit(Key(32)), 0);
  // A batch above it fails again (500 tokens): the limit that held is back at once, not 499.
  EXPECT_EQ(s.LimitSteps(Key(32), 499), 399);
  EXPECT_EQ(s.StepLimit(Key(32)), 399);
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(s.CleanStep(Key(32)));
  EXPECT_TRUE(s.CleanStep(Key(32)));  // lifted again
  // As many clean steps more above it: forgotten (a new failure learns from scratch).
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(s.CleanStep(Key(32)));
  EXPECT_EQ(s.LimitSteps(Key(32), 499), 499);
  // A bucket that does not step for kForgetLimitAfter loses its limit; the plan says so.
  EXPECT_EQ(s.LimitSteps(Key(64), 150), 150);
  Plan later = s.Next(kT0 + Scheduler::kForgetLimitAfter + absl::Minutes(5));
  EXPECT_EQ(s.StepLimit(Key(64)), 0);
  ASSERT_GE(later.forgotten_limits.size(), 1u);
  EXPECT_EQ(later.forgotten_limits[0].first, "m");
}

TEST_F(SchedulerTest, ABucketThatCannotAdmitCompetesWithItsRunningRequestsOnly) {
  Scheduler s(Opts(8, absl::ZeroDuration()));
  SchedEntry* a1 = Add(s, Key(32), kT0 - absl::Seconds(5), 1, 100);
  ASSERT_EQ(s.Next(kT0).admit, (std::vector<SchedEntry*>{a1}));
  SchedEntry* b1 = Add(s, Key(48), kT0, /*priority=*/2, 100);
  ASSERT_EQ(s.Next(kT0).admit, (std::vector<SchedEntry*>{b1}));
  // Not at the cap (2 of 8 run), but a1's bucket is held to 100 tokens: a high-priority request
  // queued there cannot join a1, so b1 steps (the best running request), not a1.
  s.LimitSteps(Key(32), 100);
  SchedEntry* waiting = Add(s, Key(32), kT0 - absl::Seconds(100), /*priority=*/2, 100);
  Plan p = s.Next(kT0 + absl::Seconds(1));
  EXPECT_EQ(p.batch, (std::vector<SchedEntry*>{b1}));
  EXPECT_FALSE(waiting->running());
}

TEST_F(SchedulerTest, AtTheCapQueuedRequestsDoNotDecideWhichRunningBucketSteps) {
  Scheduler s(Opts(2, absl::ZeroDuration()));  // starvation_age 10 s
  SchedEntry* a1 = Add(s, Key(32), kT0 - absl::Seconds(5));
  ASSERT_EQ(s.Next(kT0).admit, (std::vector<SchedEntry*>{a1}));
  SchedEntry* b1 = Add(s, Key(48), kT0, /*priority=*/2);  // outscores a1: starts beside it
  ASSERT_EQ(s.Next(kT0).admit, (std::vector<SchedEntry*>{b1}));
  // Two run (the cap). A high-priority request that has waited long queues in a1's bucket: it
  // cannot start, so b1 (the best running request) steps, not a1 on the queued one's score.
  Add(s, Key(32), kT0 - absl::Seconds(100), /*priority=*/2);
  Plan p = s.Next(kT0 + absl::Seconds(1));
  EXPECT_EQ(p.batch, (std::vector<SchedEntry*>{b1}));
  EXPECT_TRUE(p.admit.empty());
  // Once b1 finishes, a slot is free: the queued one joins a1's bucket and both step.
  s.Finish(b1);
  p = s.Next(kT0 + absl::Seconds(2));
  EXPECT_EQ(p.batch.size(), 2u);
  EXPECT_EQ(p.admit.size(), 1u);
}

TEST_F(SchedulerTest, QueueFullIsResourceExhaustedWithLimit) {
  SchedulerOptions o = Opts();
  o.max_queue = 2;
  Scheduler s(o);
  Add(s, Key(32), kT0);
  Add(s, Key(32), kT0);
  SchedEntry extra;
  extra.key = Key(32);
  absl::Status st = s.Enqueue(&extra);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(st.message().find("limit 2"), std::string::npos) << st;
}

}  // namespace
}  // namespace linvideo::server

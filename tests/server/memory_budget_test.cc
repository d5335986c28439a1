// Scheduler limits from device memory (server/memory_budget.h): the derivation from a measured
// memory line, and the measuring protocol on the fake executor with a simulated device.

#include "server/memory_budget.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "server/fake_executor.h"

namespace linvideo::server {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int64_t kMiB = int64_t{1} << 20;

// resident 10 GiB, 1 GiB fixed per step, 1 MiB per token: samples at 1,000 and 2,000 tokens.
MemoryBudgetInput Input() {
  MemoryBudgetInput in;
  in.total_bytes = 100 * kGiB;
  in.measured.resident_bytes = 10 * kGiB;
  in.measured.samples = {{1000, 10 * kGiB + kGiB + 1000 * kMiB},
                         {2000, 10 * kGiB + kGiB + 2000 * kMiB}};
  in.measured.decode_bytes = 5 * kGiB;
  in.margin = 0.1;
  in.request_tokens = 1000;
  in.largest_request_tokens = 4000;
  return in;
}

TEST(MemoryBudgetTest, BudgetIsWhatTheMarginResidentAndFixedCostLeavePerToken) {
  auto b = DeriveMemoryBudget(Input());
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_DOUBLE_EQ(b->bytes_per_token, static_cast<double>(kMiB));
  EXPECT_EQ(b->fixed_bytes, kGiB);
  // 90 GiB usable - 10 resident - 1 fixed = 79 GiB = 80,896 tokens of 1 MiB.
  EXPECT_EQ(b->token_budget, 79 * 1024);
  EXPECT_EQ(b->max_batch, 64);  // 80 default requests fit; the scheduler's cap is 64
  EXPECT_NE(b->summary.find("token budget 80896"), std::string::npos) << b->summary;

  MemoryBudgetInput in = Input();
  in.overlap_decode = true;  // a decode beside the steps: its 5 GiB are reserved
  in.request_tokens = 4000;
  auto overlapped = DeriveMemoryBudget(in);
  ASSERT_TRUE(overlapped.ok()) << overlapped.status();
  EXPECT_EQ(overlapped->token_budget, 74 * 1024);
  EXPECT_EQ(overlapped->max_batch, 18);  // 75,776 / 4,000
  EXPECT_NE(overlapped->summary.find("decode reserved"), std::string::npos);
}

// Each request also brings 512 MiB of its own (its text states), whatever its tokens: the samples
// of one and two default requests and of one large request separate that from the per-token cost.
TEST(MemoryBudgetTest, APerRequestCostIsSeparatedFromThePerTokenOneAndBoundsTheBatch) {
  MemoryBudgetInput in = Input();
  const int64_t base = 10 * kGiB + kGiB;  // resident + fixed
  in.measured.samples = {{1000, base + 512 * kMiB + 1000 * kMiB, 1},
                         {2000, base + 2 * 512 * kMiB + 2000 * kMiB, 2},
                         {4000, base + 512 * kMiB + 4000 * kMiB, 1}};
  auto b = DeriveMemoryBudget(in);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_DOUBLE_EQ(b->bytes_per_token, static_cast<double>(kMiB));
  EXPECT_DOUBLE_EQ(b->bytes_per_request, 512.0 * kMiB);
  EXPECT_EQ(b->fixed_bytes, kGiB);
  // 79 GiB usable = 80,896 MiB; a default request costs 512 + 1,000 MiB: 53 of them, and the
  // tokens what 53 requests' own 512 MiB leave: 80,896 - 27,136 = 53,760.
  EXPECT_EQ(b->max_batch, 53);
  EXPECT_EQ(b->token_budget, 53760);
  EXPECT_NE(b->summary.find("0.50 GiB per request"), std::string::npos) << b->summary;
  // A largest request of 60,000 tokens must fit alone in the token budget: fewer requests.
  in.largest_request_tokens = 60000;
  auto large = DeriveMemoryBudget(in);
  ASSERT_TRUE(large.ok()) << large.status();
  EXPECT_EQ(large->max_batch, 40);
  EXPECT_EQ(large->token_budget, 80896 - 40 * 512);
  // Folded into the slope (no two samples with equal requests): the old, safe over-estimate.
  in.largest_request_tokens = 4000;
  in.measured.samples.pop_back();
  auto folded = DeriveMemoryBudget(in);
  ASSERT_TRUE(folded.ok()) << folded.status();
  EXPECT_DOUBLE_EQ(folded->bytes_per_token, 1512.0 * kMiB / 1000);
  EXPECT_EQ(folded->bytes_per_request, 0);
  EXPECT_EQ(folded->max_batch, 53);
}

TEST(MemoryBudgetTest, ALargestRequestThatCannotFitIsAnErrorSayingWhatToLower) {
  MemoryBudgetInput in = Input();
  in.largest_request_tokens = 100000;
  auto b = DeriveMemoryBudget(in);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(b.status().message().find("largest request"), std::string::npos) << b.status();
  EXPECT_NE(b.status().message().find("fits 80896 step tokens"), std::string::npos);
  EXPECT_NE(b.status().message().find("limits.max_width"), std::string::npos);
  in.total_bytes = 5 * kGiB;  // less than resident: nothing left at all
  in.largest_request_tokens = 1;
  EXPECT_EQ(DeriveMemoryBudget(in).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(MemoryBudgetTest, RefusesSamplesItCannotScaleFrom) {
  MemoryBudgetInput flat = Input();
  flat.measured.samples[1].used_bytes = flat.measured.samples[0].used_bytes;
  auto b = DeriveMemoryBudget(flat);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(b.status().message().find("did not grow measurably"), std::string::npos) << b.status();
  MemoryBudgetInput one = Input();
  one.measured.samples.pop_back();
  EXPECT_EQ(DeriveMemoryBudget(one).status().code(), absl::StatusCode::kInvalidArgument);
  MemoryBudgetInput backwards = Input();
  std::swap(backwards.measured.samples[0], backwards.measured.samples[1]);
  EXPECT_EQ(DeriveMemoryBudget(backwards).status().code(), absl::StatusCode::kInvalidArgument);
  MemoryBudgetInput margin = Input();
  margin.margin = 1.0;
  EXPECT_EQ(DeriveMemoryBudget(margin).status().code(), absl::StatusCode::kInvalidArgument);
}

// A simulated device: the fake executor's steps and decodes raise a caching allocator's
// high-water mark like the real ones (per token, plus a fixed workspace); releasing the cache
// drops it back to what is held (the weights).
class SimulatedDevice : public Executor {
 public:
  explicit SimulatedDevice(const FakeExecutorOptions& o, int64_t per_token = kPerToken,
                           int64_t per_request = 0)
      : fake_(o), per_token_(per_token), per_request_(per_request) {}
  const ModelLimits& limits() const override { return fake_.limits(); }
  absl::StatusOr<std::vector<std::unique_ptr<StepState>>> Start(
      const std::vector<const GenerationParams*>& params) override {
    tokens_per_request_ = core::params::StepTokens(*params[0], limits().geometry);
    return fake_.Start(params);
  }
  absl::Status Step(const std::vector<StepState*>& batch) override {
    Touch(kWorkspace +
          (per_request_ + per_token_ * tokens_per_request_) * static_cast<int64_t>(batch.size()));
    ++steps_;
    return fake_.Step(batch);
  }
  absl::StatusOr<media::VideoFrames> Decode(const StepState& state) override {
    Touch(kDecode);
    return fake_.Decode(state);
  }
  absl::Status WarmUp() override { return absl::OkStatus(); }
  int64_t cache_bytes_limit() const override { return cache_bytes_; }

  DeviceMemoryProbe Probe() {
    return {[this] { return cached_; }, [this] { cached_ = kWeights; }};
  }
  int steps() const { return steps_; }
  int64_t cache_bytes_ = 0;

  static constexpr int64_t kWeights = 3 * kGiB, kWorkspace = 256 * kMiB, kPerToken = 64 * 1024,
                           kDecode = 2 * kGiB;

 private:
  void Touch(int64_t bytes) { cached_ = std::max(cached_, kWeights + bytes); }
  FakeExecutor fake_;
  int64_t cached_ = kWeights + kGiB;  // loading left cached blocks behind
  int64_t per_token_;
  int64_t per_request_;
  int64_t tokens_per_request_ = 0;
  int steps_ = 0;
};

TEST(MemoryBudgetTest, MeasuresEachProbeFromTheResidentWeights) {
  FakeExecutorOptions o;
  o.step_ms = 0;
  o.item_ms = 0;
  o.limits.max_width = 256;  // the largest request: 256 x 256 x 81, the default 128 x 128
  o.limits.max_height = 256;
  o.limits.default_width = 128;
  o.limits.default_height = 128;
  constexpr int64_t kPerRequest = 300 * kMiB;
  SimulatedDevice device(o, SimulatedDevice::kPerToken, kPerRequest);
  GenerationParams p;
  p.prompt = "probe";
  auto resolved = core::params::Resolve(p, device.limits());
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  const int64_t one = core::params::StepTokens(*resolved, device.limits().geometry);
  const int64_t largest = LargestRequestTokens(device.limits());
  ASSERT_GT(largest, 2 * one);
  auto m = MeasureStepMemory(device, *resolved, device.Probe(), /*decode=*/true);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->resident_bytes, SimulatedDevice::kWeights);  // the load's cache released first
  ASSERT_EQ(m->samples.size(), 3u);                         // sorted by tokens
  EXPECT_EQ(m->samples[0].tokens, one);
  EXPECT_EQ(m->samples[1].tokens, 2 * one);
  EXPECT_EQ(m->samples[1].requests, 2);
  EXPECT_EQ(m->samples[2].tokens, largest);
  EXPECT_EQ(m->samples[2].requests, 1);
  EXPECT_EQ(m->samples[1].used_bytes - m->samples[0].used_bytes,
            kPerRequest + SimulatedDevice::kPerToken * one);
  EXPECT_EQ(m->decode_bytes, SimulatedDevice::kDecode);
  EXPECT_EQ(device.steps(), 4);  // one step per probe, one before the decode (steps = 1)
  EXPECT_EQ(m->samples[0].used_bytes, SimulatedDevice::kWeights + SimulatedDevice::kWorkspace +
                                          kPerRequest + SimulatedDevice::kPerToken * one);

  MemoryBudgetInput in;
  in.total_bytes = 80 * kGiB;
  in.measured = *m;
  in.request_tokens = one;
  in.largest_request_tokens = largest;
  auto b = DeriveMemoryBudget(in);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_DOUBLE_EQ(b->bytes_per_token, static_cast<double>(SimulatedDevice::kPerToken));
  EXPECT_DOUBLE_EQ(b->bytes_per_request, static_cast<double>(kPerRequest));
  EXPECT_EQ(b->fixed_bytes, SimulatedDevice::kWorkspace);
  // What a full batch needs fits what is usable.
  const double usable = 80.0 * kGiB * 0.9 - SimulatedDevice::kWeights - SimulatedDevice::kWorkspace;
  EXPECT_LE(kPerRequest * b->max_batch + SimulatedDevice::kPerToken * b->token_budget, usable);
  EXPECT_GE(b->token_budget, largest);
}

TEST(MemoryBudgetTest, TheLargestRequestCountsCfgUnlessTheModelIsDistilled) {
  ModelLimits l;             // 1280 x 1280 x 81 at most, Wan geometry
  l.default_guidance = 1.0;  // unguided by default, but a request may still ask for guidance
  const int64_t tokens = 21 * 80 * 80;
  EXPECT_EQ(LargestRequestTokens(l), 2 * tokens);
  l.fixed_timesteps = {1000, 750, 500, 250};  // distilled: never a second pass
  EXPECT_EQ(LargestRequestTokens(l), tokens);
  ModelLimits odd;
  odd.max_width = 1000;  // not a multiple of 16: the largest accepted width is 992
  odd.max_height = 480;
  odd.max_frames = 5;
  EXPECT_EQ(LargestRequestTokens(odd), 2 * 2 * 30 * 62);
}

// Two models on one device: each is checked against its own line and largest request, and the
// server's budget is the smaller; a hot swap's second copy of a model is reserved.
TEST(MemoryBudgetTest, SeveralModelsGetTheirOwnBudgetsAndSwapsAreReserved) {
  FakeExecutorOptions o;
  o.step_ms = 0;
  o.item_ms = 0;
  o.limits.max_width = 832;
  o.limits.max_height = 480;
  SimulatedDevice cheap(o, 16 * 1024), dear(o, 64 * 1024);
  std::vector<BudgetModel> models = {{"cheap", &cheap, o.limits}, {"dear", &dear, o.limits}};
  // One device read by both: the dearer model's probe holds the same resident weights.
  DeviceMemoryProbe probe{
      [&] { return std::max(cheap.Probe().used_bytes(), dear.Probe().used_bytes()); },
      [&] {
        cheap.Probe().release_cached();
        dear.Probe().release_cached();
      }};
  ServingBudgetOptions options;
  options.total_bytes = 40 * kGiB;
  auto b = DeriveServingBudget(models, probe, options);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_DOUBLE_EQ(b->bytes_per_token, 64.0 * 1024);  // the dear model bounds the budget
  const double usable = 40.0 * kGiB * 0.9 - SimulatedDevice::kWeights - SimulatedDevice::kWorkspace;
  EXPECT_EQ(b->token_budget, static_cast<int64_t>(usable / (64 * 1024)));
  // A step runs one model: each keeps the budget its own token cost allows.
  EXPECT_EQ(b->model_token_budgets.at("dear"), static_cast<int64_t>(usable / (64 * 1024)));
  EXPECT_EQ(b->model_token_budgets.at("cheap"), static_cast<int64_t>(usable / (16 * 1024)));
  EXPECT_NE(b->summary.find("cheap: "), std::string::npos) << b->summary;
  EXPECT_NE(b->summary.find("dear: "), std::string::npos) << b->summary;

  options.swap_models = 2;  // the new checkpoint beside the active one, plus one kept
  auto swapping = DeriveServingBudget(models, probe, options);
  ASSERT_TRUE(swapping.ok()) << swapping.status();
  EXPECT_EQ(swapping->token_budget,
            static_cast<int64_t>((usable - 2 * (SimulatedDevice::kWeights / 2)) / (64 * 1024)));
  EXPECT_NE(swapping->summary.find("for hot swaps"), std::string::npos);

  // Text caches, empty when measured, are reserved for every checkpoint that may be loaded.
  cheap.cache_bytes_ = 256 * kMiB;
  dear.cache_bytes_ = 128 * kMiB;
  auto cached = DeriveServingBudget(models, probe, options);
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ(cached->token_budget,
            static_cast<int64_t>((usable - 2 * (SimulatedDevice::kWeights / 2) - 3 * 384 * kMiB) /
                                 (64 * 1024)));
  cheap.cache_bytes_ = dear.cache_bytes_ = 0;

  // Overlapped decodes: one per worker, each scaled from the default request to the largest
  // (pixels and frames).
  options.swap_models = 0;
  options.overlap_decode = true;
  options.decode_workers = 2;
  std::vector<BudgetModel> shorter = models;  // default videos of 21 frames, up to 81 allowed
  for (BudgetModel& m : shorter) m.limits.default_frames = 21;
  auto decoding = DeriveServingBudget(shorter, probe, options);
  ASSERT_TRUE(decoding.ok()) << decoding.status();
  GenerationParams request;
  request.prompt = "memory probe";
  auto resolved = core::params::Resolve(request, shorter[0].limits);
  ASSERT_TRUE(resolved.ok());
  const double scale = static_cast<double>(o.limits.max_width) * o.limits.max_height *
                       o.limits.max_frames /
                       (static_cast<double>(resolved->width) * resolved->height * resolved->frames);
  ASSERT_GT(scale, 1.0);
  const int64_t decode = static_cast<int64_t>(SimulatedDevice::kDecode * scale * 2);
  EXPECT_EQ(decoding->token_budget, static_cast<int64_t>((usable - decode) / (64 * 1024)))
      << decoding->summary;
  options.overlap_decode = false;

  // Requests of both models run at once (max_batch in all): when the dear model's requests hold
  // 512 MiB each between steps, the cheap model's budget leaves room for max_batch − 1 of them.
  // (Defaults below the largest request, so the measurement separates the per-request cost.)
  FakeExecutorOptions short_default = o;
  short_default.limits.default_frames = 21;
  SimulatedDevice light(short_default, 16 * 1024), heavy(short_default, 64 * 1024, 512 * kMiB);
  std::vector<BudgetModel> mixed = {{"cheap", &light, short_default.limits},
                                    {"heavy", &heavy, short_default.limits}};
  DeviceMemoryProbe mixed_probe{
      [&] { return std::max(light.Probe().used_bytes(), heavy.Probe().used_bytes()); },
      [&] {
        light.Probe().release_cached();
        heavy.Probe().release_cached();
      }};
  auto both = DeriveServingBudget(mixed, mixed_probe, options);
  ASSERT_TRUE(both.ok()) << both.status();
  ASSERT_GT(both->max_batch, 1) << both->summary;
  const double others = (both->max_batch - 1) * 512.0 * kMiB;
  EXPECT_NEAR(static_cast<double>(both->model_token_budgets.at("cheap")),
              (usable - others) / (16 * 1024), 2.0)
      << both->summary;
  EXPECT_NEAR(static_cast<double>(both->model_token_budgets.at("heavy")),
              (usable - 512.0 * kMiB - others) / (64 * 1024), 2.0)
      << both->summary;

  options.total_bytes = 8 * kGiB;  // the dear model's largest request no longer fits
  auto small = DeriveServingBudget(models, probe, options);
  EXPECT_EQ(small.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(small.status().message().find("model dear"), std::string::npos) << small.status();
}

// auto_budget replaces the configured limits, except those the operator set: an explicit
// max_batch or token_budget caps what was derived (before, it was silently replaced).
TEST(MemoryBudgetTest, AnExplicitMaxBatchOrTokenBudgetCapsTheDerivedOnes) {
  MemoryBudget b;
  b.max_batch = 12;
  b.token_budget = 30000;
  b.model_token_budgets = {{"cheap", 50000}, {"dear", 30000}};
  ServerConfig c;
  std::string note = ApplyServingBudget(b, {}, c.scheduler);
  EXPECT_EQ(c.scheduler.max_batch, 12);  // the defaults (4, unlimited) are replaced
  EXPECT_EQ(c.scheduler.token_budget, 30000);
  EXPECT_EQ(c.scheduler.model_token_budgets.at("cheap"), 50000);
  auto parsed = ParseServerConfig({"--scheduler.max_batch=8", "--scheduler.token_budget=40000"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ServerConfig given = parsed->config;
  note = ApplyServingBudget(b, given.given, given.scheduler);
  EXPECT_EQ(given.scheduler.max_batch, 8);
  EXPECT_EQ(given.scheduler.token_budget, 30000);  // below the cap: kept
  EXPECT_EQ(given.scheduler.model_token_budgets.at("cheap"), 40000);
  EXPECT_EQ(given.scheduler.model_token_budgets.at("dear"), 30000);
  EXPECT_NE(note.find("max_batch 8 as configured"), std::string::npos) << note;
  // A configured max_batch above the derived one does not raise it.
  parsed = ParseServerConfig({"--scheduler.max_batch=32"});
  ASSERT_TRUE(parsed.ok());
  ApplyServingBudget(b, parsed->config.given, parsed->config.scheduler);
  EXPECT_EQ(parsed->config.scheduler.max_batch, 12);
}

}  // namespace
}  // namespace linvideo::server

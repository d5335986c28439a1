// core::params: the one Resolve (defaults, limits, messages) and the latent geometry a request
// implies, without LibTorch.
#include "core/params/generation_params.h"

#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace linvideo::core::params {
namespace {

// A small model's limits (defaults unlike Wan's, so the test sees they are applied).
ModelLimits Small() {
  ModelLimits l;
  l.max_width = l.max_height = 256;
  l.max_frames = l.default_frames = 33;
  std::tie(l.default_width, l.default_height, l.default_shift) = std::tuple(128, 96, 3.0);
  return l;
}

GenerationParams Prompt(const std::string& text) {
  GenerationParams p;
  p.prompt = text;
  return p;
}

TEST(ResolveTest, UnsetFieldsTakeTheModelDefaults) {
  auto r = Resolve(Prompt("a red circle"), Small());
  ASSERT_TRUE(r.ok()) << r.status();
  using Sizes = std::tuple<int64_t, int64_t, int64_t, int64_t>;
  EXPECT_EQ(Sizes(r->width, r->height, r->frames, r->steps), Sizes(128, 96, 33, 50));
  EXPECT_EQ(std::pair(r->guidance, r->shift), std::pair(5.0, 3.0));
  // Explicit values, including guidance 0 (CFG off), are kept.
  GenerationParams p = Prompt("x");
  p.guidance = 0;
  p.shift = 7;
  p.frames = 1;
  auto q = Resolve(p, Small());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_DOUBLE_EQ(q->guidance, 0.0);
  EXPECT_DOUBLE_EQ(q->shift, 7.0);
  EXPECT_FALSE(UsesCfg(*q));
  EXPECT_TRUE(UsesCfg(*r));
}

TEST(ResolveTest, EveryBadFieldIsNamedWithWhatIsAllowed) {
  struct Case {
    void (*mutate)(GenerationParams&);
    const char* expect;
  };
  const Case cases[] = {
      {[](GenerationParams& p) { p.prompt.clear(); }, "prompt is empty"},
      {[](GenerationParams& p) { p.negative_prompt = std::string(9000, 'n'); },
       "negative_prompt is 9000 bytes; at most 8192 are allowed"},
      {[](GenerationParams& p) { p.width = 40; }, "width 40 is not allowed; use a multiple of 16"},
      {[](GenerationParams& p) { p.height = 512; }, "multiple of 16 in [16, 256] (0: the model's"},
      {[](GenerationParams& p) { p.width = -16; }, "width -16 is not allowed"},
      {[](GenerationParams& p) { p.frames = 8; }, "frames 8 is not allowed; use 4k+1"},
      {[](GenerationParams& p) { p.frames = 37; }, "up to 33"},
      {[](GenerationParams& p) { p.steps = 101; }, "steps 101 is not allowed; use 1..100"},
      {[](GenerationParams& p) { p.guidance = 21; }, "guidance 21 is not allowed; use 0..20"},
      {[](GenerationParams& p) { p.guidance = -1; }, "guidance -1 is not allowed"},
      {[](GenerationParams& p) { p.shift = 0; }, "shift 0 is not allowed; use a value in (0, 100]"},
  };
  for (const Case& c : cases) {
    GenerationParams p = Prompt("x");
    c.mutate(p);
    auto r = Resolve(p, Small());
    ASSERT_FALSE(r.ok()) << c.expect;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status();
  }
}

// A distilled few-step model declares its timestep list: the defaults become fewstep, 4 steps, no
// guidance, and anything else is refused with what the model accepts.
TEST(ResolveTest, DistilledModelsAcceptOnlyTheirDeclaredSampler) {
  ModelLimits l = Small();
  ASSERT_TRUE(DeclareSampler("fewstep", {1000, 750, 500, 250}, l).ok());
  EXPECT_EQ(l.default_sampler, SamplerKind::kFewStep);
  auto r = Resolve(Prompt("x"), l);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->sampler, SamplerKind::kFewStep);
  EXPECT_EQ(r->steps, 4);
  EXPECT_FALSE(UsesCfg(*r));
  GenerationParams same = Prompt("x");
  same.steps = 4;
  same.guidance = 1.0;
  same.sampler = SamplerKind::kFewStep;
  EXPECT_TRUE(Resolve(same, l).ok());

  const std::pair<void (*)(GenerationParams&), const char*> cases[] = {
      {[](GenerationParams& p) { p.steps = 50; },
       "steps 50 is not allowed; this model is distilled for exactly 4 steps (timesteps [1000, "
       "750, 500, 250]); use 4 or 0"},
      {[](GenerationParams& p) { p.guidance = 5; },
       "guidance 5 is not allowed; this distilled model samples without classifier-free"},
      {[](GenerationParams& p) { p.sampler = SamplerKind::kUniPC; },
       "sampler unipc is not allowed; this model is distilled for the fewstep sampler"},
  };
  for (const auto& [mutate, expect] : cases) {
    GenerationParams p = Prompt("x");
    mutate(p);
    auto bad = Resolve(p, l);
    ASSERT_FALSE(bad.ok()) << expect;
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(bad.status().message().find(expect), std::string::npos) << bad.status();
  }
  // A model without a list takes any sampler; fewstep is capped at 1000 steps.
  GenerationParams euler = Prompt("x");
  euler.sampler = SamplerKind::kEuler;
  EXPECT_EQ(Resolve(euler, Small())->sampler, SamplerKind::kEuler);
  EXPECT_EQ(Resolve(Prompt("x"), Small())->sampler, SamplerKind::kUniPC);
}

TEST(DeclareSamplerTest, BadDeclarationsSayWhatIsAllowed) {
  const std::pair<std::pair<std::string, std::vector<int64_t>>, const char*> cases[] = {
      {{"ddim", {}}, "unknown sampler \"ddim\"; allowed: unipc, euler, fewstep"},
      {{"unipc", {1000, 500}}, "timestep list is declared for the fewstep sampler only"},
      {{"fewstep", {500, 750}}, "use strictly decreasing integers in [1, 1000]"},
      {{"fewstep", {1000, 0}}, "use strictly decreasing integers in [1, 1000]"},
      {{"fewstep", {2000}}, "use strictly decreasing integers in [1, 1000]"},
  };
  for (const auto& [decl, expect] : cases) {
    ModelLimits l = Small();
    absl::Status s = DeclareSampler(decl.first, decl.second, l);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << expect;
    EXPECT_NE(s.message().find(expect), std::string::npos) << s;
    EXPECT_TRUE(l.fixed_timesteps.empty());  // a refused declaration changes nothing
  }
  ModelLimits l = Small();
  l.max_steps = 3;
  EXPECT_NE(DeclareSampler("fewstep", {1000, 750, 500, 250}, l).message().find("at most 3"),
            std::string::npos);
  // A named sampler without a list changes only the default.
  ModelLimits e = Small();
  ASSERT_TRUE(DeclareSampler("euler", {}, e).ok());
  EXPECT_EQ(e.default_sampler, SamplerKind::kEuler);
  EXPECT_EQ(e.default_steps, 50);
}

TEST(LatentGeometryTest, TokensAndCfgPassesFollowTheModelsGeometry) {
  GenerationParams p = Prompt("x");
  p.width = 832;
  p.height = 480;
  p.frames = 81;
  p.guidance = 5;
  const LatentShape s = LatentShapeOf(p, LatentGeometry{});
  EXPECT_EQ(s.channels, 16);
  EXPECT_EQ(s.frames, 21);
  EXPECT_EQ(s.height, 60);
  EXPECT_EQ(s.width, 104);
  EXPECT_EQ(s.tokens, 32760);  // Wan 2.1's 81x480x832
  EXPECT_EQ(CfgPasses(p), 2);
  EXPECT_EQ(StepTokens(p, LatentGeometry{}), 2 * 32760);
  p.guidance = 1.0;  // <= 1: no CFG
  EXPECT_EQ(StepTokens(p, LatentGeometry{}), 32760);

  // Another geometry (patch 1x1x1, 8 latent channels) changes tokens and the allowed sizes.
  ModelLimits l = Small();
  l.geometry.channels = 8;
  l.geometry.patch_h = l.geometry.patch_w = 1;
  EXPECT_EQ(l.width_multiple(), 8);
  GenerationParams q = Prompt("x");
  q.width = 40;
  q.height = 24;
  q.frames = 5;
  auto r = Resolve(q, l);
  ASSERT_TRUE(r.ok()) << r.status();
  const LatentShape t = LatentShapeOf(*r, l.geometry);
  EXPECT_EQ(t.channels, 8);
  EXPECT_EQ(t.tokens, 2 * 3 * 5);
}

}  // namespace
}  // namespace linvideo::core::params

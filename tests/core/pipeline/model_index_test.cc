// core/pipeline/model_index.h: the "linvideo" serving section is applied whole or refused whole,
// with typed, ranged fields (model_config_fuzz's invariants, as examples).
#include "core/pipeline/model_index.h"

#include <gtest/gtest.h>

namespace linvideo::core::pipeline {
namespace {

using nlohmann::json;

TEST(ServingSectionTest, AppliesTheShippedModelsSections) {
  params::ModelLimits l;
  json index = {{"linvideo",
                 {{"default_width", 128},
                  {"default_height", 128},
                  {"default_frames", 33},
                  {"default_steps", 4},
                  {"default_guidance", 1.0},
                  {"default_shift", 3.0},
                  {"max_width", 512},
                  {"max_height", 512},
                  {"max_frames", 65},
                  {"max_steps", 100},
                  {"sampler", "fewstep"},
                  {"timesteps", {1000, 750, 500, 250}}}}};
  ASSERT_TRUE(ApplyServingSection(index, "model_index.json", l).ok());
  EXPECT_EQ(l.default_width, 128);
  EXPECT_EQ(l.max_frames, 65);
  EXPECT_EQ(l.fixed_timesteps, (std::vector<int64_t>{1000, 750, 500, 250}));
  EXPECT_EQ(l.default_sampler, params::SamplerKind::kFewStep);
  params::ModelLimits none;
  ASSERT_TRUE(ApplyServingSection(json::object(), "model_index.json", none).ok());
  EXPECT_EQ(none.default_width, params::ModelLimits().default_width);
}

TEST(ServingSectionTest, RefusesWrongTypesRangesAndDefaultsAboveTheirMaximum) {
  const std::vector<std::pair<json, std::string>> cases = {
      {{{"default_width", 128.5}}, "\"linvideo.default_width\" is 128.5; allowed an integer"},
      {{{"default_width", 1e300}}, "allowed an integer in [16, 16384]"},
      {{{"max_frames", -5}}, "\"linvideo.max_frames\" is -5"},
      {{{"default_steps", "50"}}, "\"linvideo.default_steps\" is \"50\""},
      {{{"default_shift", -1.0}}, "allowed a number in [0, 100]"},
      {{{"default_guidance", nullptr}}, "\"linvideo.default_guidance\" is null"},
      {{{"default_width", 1024}, {"max_width", 512}},
       "\"linvideo.default_width\" 1024 is above \"linvideo.max_width\" 512"},
      {{{"timesteps", {1000, 500.5}}}, "must be an array of integers"},
      {{{"timesteps", {1000, 18446744073709551615ull}}}, "must be an array of integers"},
      {{{"sampler", 3}}, "must be a sampler name"},
  };
  for (const auto& [section, want] : cases) {
    params::ModelLimits l;
    const params::ModelLimits before = l;
    absl::Status s = ApplyServingSection({{"linvideo", section}}, "m/model_index.json", l);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << section.dump();
    EXPECT_NE(s.message().find(want), std::string::npos) << s << " wanted: " << want;
    EXPECT_NE(s.message().find("m/model_index.json"), std::string::npos) << s;
    EXPECT_EQ(l.default_width, before.default_width) << "a refused section changed the limits";
    EXPECT_EQ(l.max_frames, before.max_frames);
  }
  params::ModelLimits l;
  EXPECT_FALSE(ApplyServingSection({{"linvideo", 5}}, "x", l).ok());
  EXPECT_FALSE(ApplyServingSection(json::array(), "x", l).ok());
}

}  // namespace
}  // namespace linvideo::core::pipeline

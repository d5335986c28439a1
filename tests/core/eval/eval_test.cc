// Quality harness: detector accuracy on ground truth, scores of ground truth vs noise, metrics.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "core/data/render.h"
#include "core/data/sampler.h"
#include "core/eval/detect.h"
#include "core/eval/eval_set.h"
#include "core/eval/metrics.h"
#include "core/eval/score.h"
#include "core/eval/validate.h"

namespace linvideo::core::eval {
namespace {

void ExpectAccurate(const DetectorValidation& v, double min) {
  const Adherence& a = v.accuracy;
  std::cout << v.clips << " clips: background " << a.background << ", colour " << a.color
            << ", shape " << a.shape << ", motion " << a.motion << ", size " << a.size << ", count "
            << a.count << ", all " << a.all << "\n";
  for (const std::string& f : v.failures) std::cout << "  " << f << "\n";
  for (double x : {a.background, a.color, a.shape, a.motion, a.size, a.count}) EXPECT_GE(x, min);
}

TEST(DetectorTest, AccurateOnGroundTruthAt128) {
  ExpectAccurate(ValidateDetectors(200, /*seed=*/1000, 33, 128, 128), 0.98);
}

TEST(DetectorTest, AccurateOnGroundTruthAt64) {
  ExpectAccurate(ValidateDetectors(300, /*seed=*/5000, 17, 64, 64), 0.98);
}

TEST(DetectorTest, ShapeClassifier) {
  EXPECT_EQ(ClassifyShape(1.0, 0.0), data::Shape::kSquare);
  EXPECT_EQ(ClassifyShape(0.78, 0.0), data::Shape::kCircle);
  EXPECT_EQ(ClassifyShape(0.5, 0.16), data::Shape::kTriangle);
  EXPECT_EQ(ClassifyShape(0.5, 0.0), data::Shape::kDiamond);
}

TEST(ScoreTest, GroundTruthScoresPerfectly) {
  for (const EvalCase& c : EvalCases(PromptSet::kAll)) {
    auto video = data::Render(c.spec, 33, 128, 128);
    ASSERT_TRUE(video.ok());
    auto s = ScoreVideo(*video, c.spec, &*video);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->adherence.all, 1.0) << c.prompt;
    EXPECT_EQ(s->consistency.presence, 1.0) << c.prompt;
    EXPECT_EQ(s->consistency.shape_stability, 1.0) << c.prompt;
    EXPECT_EQ(s->consistency.smoothness, 1.0) << c.prompt;
    EXPECT_LT(s->consistency.rms_jerk, 0.005) << c.prompt;
    EXPECT_NEAR(s->quality.score, 1.0, 1e-9) << c.prompt;
    EXPECT_GT(s->quality.reference_sharpness, 0.3) << c.prompt;
    EXPECT_EQ(s->fidelity.psnr, kMaxPsnr);
    EXPECT_NEAR(s->fidelity.ssim, 1.0, 1e-9);
  }
}

TEST(ScoreTest, NoiseScoresLow) {
  torch::manual_seed(0);
  const auto cases = EvalCases(PromptSet::kSeen);
  std::vector<VideoScore> scores;
  for (int i = 0; i < 4; ++i) {
    const torch::Tensor noise = torch::randint(0, 256, {17, 64, 64, 3}, torch::kUInt8);
    auto truth = data::Render(cases[i].spec, 17, 64, 64);
    auto s = ScoreVideo(noise, cases[i].spec, &*truth);
    ASSERT_TRUE(s.ok());
    scores.push_back(*s);
  }
  std::vector<const VideoScore*> ptrs;
  for (const auto& s : scores) ptrs.push_back(&s);
  const ScoreSummary m = Summarize(ptrs);
  EXPECT_EQ(m.videos, 4);
  EXPECT_EQ(m.adherence.all, 0.0);
  EXPECT_LE(m.adherence.color, 0.25);
  EXPECT_LE(m.adherence.shape, 0.25);
  EXPECT_LE(m.consistency.score, 0.25);
  EXPECT_LE(m.quality.score, 0.1);
  EXPECT_LT(m.psnr, 15.0);
  EXPECT_LT(m.ssim, 0.2);
  EXPECT_EQ(m.fidelity_videos, 4);
}

TEST(ScoreTest, WrongVideoForThePromptLosesTheRightAttributes) {
  // Render a scene that differs from the prompt's only in motion and colour.
  const EvalCase c = EvalCases(PromptSet::kSeen)[0];  // large red circle right on white
  data::SceneSpec other = c.spec;
  other.objects[0].motion = data::Motion::kLeft;
  other.objects[0].color = data::Color::kBlue;
  data::CenterPath(&other.objects[0]);
  auto video = data::Render(other, 33, 128, 128);
  auto s = ScoreVideo(*video, c.spec);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->adherence.background, 1.0);
  EXPECT_EQ(s->adherence.count, 1.0);
  EXPECT_EQ(s->adherence.color, 0.0);  // no red object: colour and everything per-object fail
  EXPECT_EQ(s->adherence.motion, 0.0);
  EXPECT_EQ(s->adherence.all, 0.0);
  // Against its own spec it is perfect.
  auto own = ScoreVideo(*video, other);
  EXPECT_EQ(own->adherence.all, 1.0);
  EXPECT_EQ(own->detection.objects[0].motion, data::Motion::kLeft);
}

TEST(ScoreTest, JitteryAndBlurryVideosScoreLower) {
  const EvalCase c = EvalCases(PromptSet::kSeen)[0];
  auto truth = data::Render(c.spec, 33, 128, 128);
  // Jitter: every other frame shifted 4 px right.
  torch::Tensor jitter = truth->clone();
  for (int f = 1; f < 33; f += 2) jitter[f] = torch::roll((*truth)[f], {4}, {1});
  auto sj = ScoreVideo(jitter, c.spec);
  EXPECT_LT(sj->consistency.smoothness, 0.2);
  EXPECT_EQ(sj->adherence.all, 1.0);
  // Blur: 5x5 box filter per frame.
  torch::Tensor x = truth->permute({0, 3, 1, 2}).to(torch::kFloat);  // [F, 3, H, W]
  torch::Tensor blurred =
      torch::avg_pool2d(torch::replication_pad2d(x, {2, 2, 2, 2}), {5, 5}, {1, 1})
          .round()
          .clamp(0, 255)
          .to(torch::kUInt8)
          .permute({0, 2, 3, 1})
          .contiguous();
  auto sb = ScoreVideo(blurred, c.spec, &*truth);
  EXPECT_LT(sb->quality.score, 0.6);
  EXPECT_LT(sb->fidelity.psnr, 35.0);
  EXPECT_GT(sb->fidelity.psnr, 15.0);
}

TEST(MetricsTest, PsnrAndSsimKnownValues) {
  std::vector<uint8_t> a(2 * 16 * 16 * 3, 100), b = a;
  for (size_t i = 16 * 16 * 3; i < b.size(); ++i) b[i] = 110;  // frame 1: error 10 everywhere
  const auto psnr = FramePsnr(a.data(), b.data(), 2, 16, 16);
  EXPECT_EQ(psnr[0], kMaxPsnr);
  EXPECT_NEAR(psnr[1], 10 * std::log10(255.0 * 255.0 / 100.0), 1e-9);
  const auto ssim = FrameSsim(a.data(), b.data(), 2, 16, 16);
  EXPECT_NEAR(ssim[0], 1.0, 1e-12);
  // Constant frames: SSIM = (2*100*110 + C1) / (100^2 + 110^2 + C1).
  const double c1 = 6.5025;
  EXPECT_NEAR(ssim[1], (2 * 100.0 * 110 + c1) / (100.0 * 100 + 110.0 * 110 + c1), 1e-9);
}

TEST(EvalSetTest, FixedSetsAreSeenAndHeldOut) {
  const auto seen = EvalCases(PromptSet::kSeen), held = EvalCases(PromptSet::kHeldOut);
  EXPECT_EQ(seen.size(), 12u);
  EXPECT_EQ(held.size(), data::HeldOutTriples().size());
  EXPECT_EQ(EvalCases(PromptSet::kAll).size(), seen.size() + held.size());
  std::set<std::string> names;
  for (const auto& c : seen) {
    EXPECT_FALSE(data::HasHeldOutObject(c.spec)) << c.name;
    EXPECT_TRUE(data::ValidateScene(c.spec).ok()) << c.name;
    names.insert(c.name);
  }
  for (const auto& c : held) {
    EXPECT_TRUE(data::IsHeldOut(c.spec.objects[0])) << c.name;
    EXPECT_TRUE(data::ValidateScene(c.spec).ok()) << c.name;
    names.insert(c.name);
  }
  EXPECT_EQ(names.size(), seen.size() + held.size());
  EXPECT_EQ(seen[0].prompt, "a large red circle moves to the right on a white background");
  EXPECT_GE(EvalSeeds().size(), 8u);
  EXPECT_FALSE(ParsePromptSet("unseen").ok());
}

}  // namespace
}  // namespace linvideo::core::eval

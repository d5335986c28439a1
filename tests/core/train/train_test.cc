// Short training runs of the real loops (tiny configs, seconds): the loss goes down, a paused and
// resumed run equals an uninterrupted one bit for bit, the exported folder serves, bad options
// are rejected with a message.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <string>

#include "core/common/runtime.h"
#include "core/data/render.h"
#include "core/eval/eval_set.h"
#include "core/io/json_file.h"
#include "core/io/safetensors.h"
#include "core/models/wan/vae_config.h"
#include "core/models/wan/wan_config.h"
#include "core/pipeline/text_to_video.h"
#include "core/train/dit_trainer.h"
#include "core/train/recipe.h"
#include "core/train/run_options.h"
#include "core/train/train_state.h"
#include "core/train/vae_trainer.h"

namespace linvideo::core::train {
namespace {
namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("lv_train_test_" + std::to_string(getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Every number that follows `key` in a training log, in order.
std::vector<double> LoggedValues(const std::string& log, const std::string& key) {
  std::vector<double> values;
  for (size_t at = log.find(key); at != std::string::npos; at = log.find(key, at + 1)) {
    values.push_back(std::stod(log.substr(at + key.size())));
  }
  return values;
}

VaeTrainOptions TinyVae(const std::string& dir) {
  VaeTrainOptions o;
  o.work_dir = dir;
  o.config = *wan::VaeConfig::Named("tiny");
  o.steps = 24;
  o.batch = 2;
  o.clip_frames = 9;
  o.window = 5;
  o.height = o.width = 32;
  o.crop = 16;
  o.warmup = 2;
  o.log_every = 6;
  o.checkpoint_every = 100;
  return o;
}

DitTrainOptions TinyDit(const std::string& dir, const std::string& vae_dir) {
  DitTrainOptions o;
  o.work_dir = dir;
  o.vae_dir = vae_dir;
  o.tokenizer_file = std::string(LINVIDEO_SOURCE_DIR) + "/models/tokenizer/spiece.model";
  o.dit = *wan::NamedDitConfig("tiny");
  o.t5 = *wan::T5Config::Named("tiny");
  o.t5.vocab = 1024;
  o.dit.text_dim = o.t5.dim;
  o.clips = 6;
  o.frames = 5;
  o.height = o.width = 32;
  o.encode_batch = 3;
  o.steps = 40;
  o.batch = 4;
  o.lr = 2e-3;
  o.warmup = 2;
  o.log_every = 10;
  o.default_steps = 3;
  return o;
}

TEST(RunOptionsTest, ResumeChecksTheRecordedOptions) {
  const nlohmann::json a = {{"lr", 1e-4}, {"seed", 0}, {"select", "auto"}};
  // A fresh run records its options and carries no changes over.
  auto fresh = CheckResumedOptions(
      {{"options", {{"lr", 1.0}}}, {"option_changes", {{{"step", 3}}}}}, a, 0, false, "W");
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fresh->options, a);
  EXPECT_TRUE(fresh->changes.empty());
  EXPECT_TRUE(fresh->note.empty());
  // A checkpoint from before options were recorded adopts these, and says so.
  auto old = CheckResumedOptions({{"train_seconds", 5.0}}, a, 7, false, "W");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->options, a);
  EXPECT_NE(old->note.find("not recorded"), std::string::npos) << old->note;
  // The same options resume silently.
  const nlohmann::json record = {{"options", a}, {"option_changes", nlohmann::json::array()}};
  auto same = CheckResumedOptions(record, a, 7, false, "W");
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_TRUE(same->note.empty());
  EXPECT_TRUE(same->changes.empty());
  // Another value, a dropped and an added option: refused, every difference named.
  const nlohmann::json b = {{"lr", 2e-4}, {"seed", 0}, {"batch", 4}};
  auto refused = CheckResumedOptions(record, b, 7, false, "W");
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find(
                "--work W holds a run checkpointed at step 7 with --batch (unset), --lr 0.0001, "
                "--select auto; this command asks for --batch 4, --lr 0.0002, --select (unset)"),
            std::string::npos)
      << refused.status();
  // Allowed: recorded with its step, appended to earlier changes.
  auto allowed = CheckResumedOptions(record, b, 7, true, "W");
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  EXPECT_EQ(allowed->options, b);
  ASSERT_EQ(allowed->changes.size(), 1u);
  EXPECT_EQ(allowed->changes[0]["step"], 7);
  EXPECT_EQ(allowed->changes[0]["changed"]["lr"], nlohmann::json({{"from", 1e-4}, {"to", 2e-4}}));
  EXPECT_FALSE(allowed->changes[0]["changed"].contains("seed"));
  const nlohmann::json later = {{"options", b}, {"option_changes", allowed->changes}};
  auto again = CheckResumedOptions(later, a, 9, true, "W");
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->changes.size(), 2u);
  EXPECT_EQ(again->changes[1]["step"], 9);
  EXPECT_FALSE(CheckResumedOptions(record, nlohmann::json::array(), 7, true, "W").ok());
}

TEST(ProgressLogTest, ThroughputCountsFromStartClock) {
  // One second of setup (the DiT stage's encoding) before StartClock must not count: 1000 samples
  // right after it read as far more than 1000 samples/s, and the ETA of the second step is ~0.
  const std::string path = TempDir("progress") + "/log.txt";
  ProgressLog log(path, 0, 2);
  usleep(1000 * 1000);
  log.StartClock();
  log.Step(0, 1.0, 1000, 1e-3, 1);
  const std::string text = ReadFile(path);
  const size_t at = text.find(" samples/s");
  ASSERT_NE(at, std::string::npos) << text;
  const double rate = std::stod(text.substr(text.rfind(' ', at - 1) + 1));
  EXPECT_GT(rate, 1000.0) << text;
  EXPECT_NE(text.find("eta 0m00s"), std::string::npos) << text;
}

class TrainTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    InitRuntime();
    vae_dir_ = new std::string(TempDir("vae"));
    ASSERT_TRUE(TrainVae(TinyVae(*vae_dir_)).ok());
  }
  static void TearDownTestSuite() {
    fs::remove_all(fs::temp_directory_path() / ("lv_train_test_" + std::to_string(getpid())));
    delete vae_dir_;
  }
  // A 40-step fine-tune of the shared VAE in `name`, logging every step.
  static VaeTrainOptions FineTune(const std::string& name) {
    VaeTrainOptions o = TinyVae(TempDir(name));
    o.init_from = *vae_dir_;
    o.steps = 40;
    o.log_every = 1;
    o.lr = 2e-3;
    return o;
  }
  static std::string* vae_dir_;
};
std::string* TrainTest::vae_dir_ = nullptr;

TEST_F(TrainTest, VaeLossDecreasesAndWritesWeights) {
  VaeTrainOptions o = TinyVae(TempDir("vae_loss"));
  o.steps = 60;
  o.log_every = 15;
  // Whole 32x32 frames: 16-px crops centred on the subject are mostly object at radii 0.12 / 0.20
  // (object pixels weigh x5), and their loss barely moved in 120 steps.
  o.crop = 32;
  o.lr = 2e-3;
  auto s = TrainVae(o);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->steps_run, o.steps);
  EXPECT_LT(s->last_loss, 0.8 * s->first_loss) << s->first_loss << " -> " << s->last_loss;
  EXPECT_TRUE(fs::exists(VaeWeightsPath(o.work_dir)));
  EXPECT_TRUE(fs::exists(VaeConfigPath(o.work_dir)));
  // The log has progress lines with throughput and ETA.
  const std::string log = ReadFile(o.work_dir + "/train_vae.log");
  EXPECT_NE(log.find("step 60/60"), std::string::npos) << log;
  EXPECT_NE(log.find("samples/s"), std::string::npos);
  EXPECT_NE(log.find("eta"), std::string::npos);

  // The reconstruction check runs the trained weights on full held-out clips.
  auto check = CheckVae(o, 2);
  ASSERT_TRUE(check.ok()) << check.status();
  ASSERT_EQ(check->psnr.size(), 2u);
  EXPECT_GT(check->mean_psnr, 5.0);
  EXPECT_EQ(check->decoded[0].sizes(), check->truth[0].sizes());
  EXPECT_EQ(check->decoded[0].sizes(), (std::vector<int64_t>{9, 32, 32, 3}));
  // The detectors scored both reconstructions (this 36-step VAE is too poor to score well).
  EXPECT_EQ(check->scores.videos, 2);
  EXPECT_GE(check->scores.adherence.background, 0.0);
  EXPECT_LE(check->scores.adherence.background, 1.0);

  // On the evaluation set's scenes: the clips are linvideo-eval's fixed scenes in order (12 seen,
  // then held-out), and the seen ones are summarised on their own.
  const std::vector<eval::EvalCase> cases = eval::EvalCases(eval::PromptSet::kAll);
  auto on_eval = CheckVae(o, 13, VaeCheckScenes::kEvalSet);
  ASSERT_TRUE(on_eval.ok()) << on_eval.status();
  EXPECT_EQ(on_eval->scores.videos, 13);
  EXPECT_EQ(on_eval->seen_scores.videos, 12);
  auto truth = data::Render(cases[12].spec, o.clip_frames, o.height, o.width);
  ASSERT_TRUE(truth.ok());
  EXPECT_TRUE(torch::equal(on_eval->truth[12], *truth));
  auto too_many = CheckVae(o, static_cast<int64_t>(cases.size()) + 1, VaeCheckScenes::kEvalSet);
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.status().message().find("evaluation set has 20 scenes"), std::string::npos)
      << too_many.status();

  // Latent noise before decoding: 0 is the plain check; noise changes the decoded clips, and is
  // seeded (same result twice). (This 60-step VAE is too poor for noise to lower PSNR reliably.)
  auto zero = CheckVae(o, 2, VaeCheckScenes::kHeldOut, 0.0);
  auto noisy = CheckVae(o, 2, VaeCheckScenes::kHeldOut, 1.0);
  auto noisy_again = CheckVae(o, 2, VaeCheckScenes::kHeldOut, 1.0);
  ASSERT_TRUE(zero.ok() && noisy.ok() && noisy_again.ok()) << noisy.status();
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(torch::equal(zero->decoded[i], check->decoded[i])) << i;
    EXPECT_FALSE(torch::equal(noisy->decoded[i], check->decoded[i])) << i;
    EXPECT_TRUE(torch::equal(noisy->decoded[i], noisy_again->decoded[i])) << i;
  }
  auto negative = CheckVae(o, 1, VaeCheckScenes::kHeldOut, -0.1);
  ASSERT_FALSE(negative.ok());
  EXPECT_NE(negative.status().message().find("latent noise must be >= 0"), std::string::npos)
      << negative.status();
}

TEST_F(TrainTest, VaeFirstFrameWeightRaisesTheSameStepsLoss) {
  // Same seed, same initial weights and data: only frame 0's weight differs, so the first step's
  // loss must grow (frame 0's reconstruction error is not zero at initialisation).
  double loss[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    VaeTrainOptions o = TinyVae(TempDir(i == 0 ? "vae_ff1" : "vae_ff4"));
    o.steps = 1;
    o.log_every = 1;
    o.first_frame_weight = i == 0 ? 1.0 : 4.0;
    auto s = TrainVae(o);
    ASSERT_TRUE(s.ok()) << s.status();
    loss[i] = s->first_loss;
  }
  EXPECT_GT(loss[1], 1.2 * loss[0]) << loss[0] << " vs " << loss[1];
}

TEST_F(TrainTest, VaeFrame0MarkerMovesTheFirstLatentFrameApart) {
  // Fine-tuned from the shared VAE with the marker loss: the logged signed gap between latent
  // frame 0 and the later frames (channel stds) starts near 0 and ends near the target.
  VaeTrainOptions o = FineTune("vae_marker");
  o.frame0_marker = 2.0;
  ASSERT_TRUE(TrainVae(o).ok());
  const std::string text = ReadFile(o.work_dir + "/train_vae.log");
  const std::vector<double> gaps = LoggedValues(text, " marker ");
  ASSERT_EQ(gaps.size(), 40u) << text;
  EXPECT_LT(std::abs(gaps.front()), 1.0) << text;
  EXPECT_GT(gaps.back(), 1.5) << text;
  o.frame0_marker = -1;
  auto bad = TrainVae(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("frame0_marker"), std::string::npos) << bad.status();
}

TEST_F(TrainTest, VaeScaleEquivarianceAddsItsWeightedTermAndTrainsTheHalfScaleDecode) {
  // Same seed, initial weights and data: the first step's loss is the plain loss plus weight x
  // the half-scale reconstruction, so weight 2 adds twice what weight 1 adds.
  double loss[3] = {0, 0, 0};
  for (int w = 0; w < 3; ++w) {
    VaeTrainOptions o = TinyVae(TempDir("vae_eq" + std::to_string(w)));
    o.init_from = *vae_dir_;
    o.steps = 1;
    o.log_every = 1;
    o.crop = 32;  // latents 4x4, pooled 2x2
    o.scale_equivariance = w;
    auto s = TrainVae(o);
    ASSERT_TRUE(s.ok()) << s.status();
    loss[w] = s->first_loss;
  }
  EXPECT_GT(loss[1], loss[0] * 1.05) << loss[0] << " vs " << loss[1];
  EXPECT_NEAR(loss[2] - loss[0], 2 * (loss[1] - loss[0]), 1e-3 * loss[2])
      << loss[0] << " " << loss[1] << " " << loss[2];

  // Fine-tuned with the term, the logged half-scale PSNR (pooled latent's decode against the
  // pooled clip) rises.
  VaeTrainOptions o = FineTune("vae_eq_train");
  o.crop = 32;
  o.scale_equivariance = 1.0;
  ASSERT_TRUE(TrainVae(o).ok());
  const std::string text = ReadFile(o.work_dir + "/train_vae.log");
  const std::vector<double> half = LoggedValues(text, " half-scale psnr ");
  ASSERT_EQ(half.size(), 40u) << text;
  // Each step's PSNR is on that step's random clips and varies by +-3 dB, so compare the means of
  // the first and last 10 steps (4-step means rose by only 0.94 dB on this run, 10-step by 2.4).
  const double first = std::accumulate(half.begin(), half.begin() + 10, 0.0) / 10;
  const double last = std::accumulate(half.end() - 10, half.end(), 0.0) / 10;
  EXPECT_GT(last, first + 1.0) << text;

  o.scale_equivariance = -1;
  auto bad = TrainVae(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("scale_equivariance"), std::string::npos) << bad.status();
}

TEST_F(TrainTest, VaeWithBf16AutocastAndEdgeLossLearns) {
  VaeTrainOptions o = TinyVae(TempDir("vae_bf16"));
  o.steps = 60;
  o.log_every = 15;
  // Whole 32x32 frames: 16-px crops centred on the subject are mostly object at radii 0.12 / 0.20
  // (object pixels weigh x5), and their loss barely moved in 120 steps.
  o.crop = 32;
  o.lr = 2e-3;
  o.bf16 = true;
  o.edge_weight = 1.0;
  auto s = TrainVae(o);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_LT(s->last_loss, 0.8 * s->first_loss) << s->first_loss << " -> " << s->last_loss;
  auto weights = io::ReadWeights(o.work_dir, "vae");
  ASSERT_TRUE(weights.ok()) << weights.status();
  for (const auto& [name, t] : *weights) {
    EXPECT_EQ(t.scalar_type(), torch::kFloat) << name;  // master weights stay fp32
    EXPECT_TRUE(t.isfinite().all().item<bool>()) << name;
  }
}

TEST_F(TrainTest, VaePausedAndResumedRunIsBitIdentical) {
  VaeTrainOptions straight = TinyVae(TempDir("vae_straight"));
  straight.steps = 10;
  ASSERT_TRUE(TrainVae(straight).ok());
  VaeTrainOptions paused = TinyVae(TempDir("vae_paused"));
  paused.steps = 10;
  paused.stop_after = 4;
  auto first = TrainVae(paused);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->steps_run, 4);
  EXPECT_FALSE(fs::exists(VaeWeightsPath(paused.work_dir)));  // paused: no final weights yet
  paused.stop_after = 0;
  auto second = TrainVae(paused);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->steps_run, 6);
  EXPECT_EQ(ReadFile(VaeWeightsPath(straight.work_dir)), ReadFile(VaeWeightsPath(paused.work_dir)));
  // A different seed gives different weights (the comparison above can fail).
  VaeTrainOptions other = TinyVae(TempDir("vae_other"));
  other.steps = 10;
  other.seed = 1;
  ASSERT_TRUE(TrainVae(other).ok());
  EXPECT_NE(ReadFile(VaeWeightsPath(straight.work_dir)), ReadFile(VaeWeightsPath(other.work_dir)));
}

TEST_F(TrainTest, VaeStopAtEndsTheStageAndInitFromStartsTheNext) {
  VaeTrainOptions first = TinyVae(TempDir("vae_stage1"));
  first.steps = 20;
  first.stop_at = 6;
  auto s1 = TrainVae(first);
  ASSERT_TRUE(s1.ok()) << s1.status();
  EXPECT_EQ(s1->steps_run, 6);
  ASSERT_TRUE(fs::exists(VaeWeightsPath(first.work_dir)));  // a deliberate end writes weights
  // Stage 2 starts from stage 1's weights: with a vanishing learning rate its result decodes
  // (almost) exactly as stage 1, while a randomly initialised run does not.
  VaeTrainOptions second = TinyVae(TempDir("vae_stage2"));
  second.init_from = first.work_dir;
  second.window = 9;
  second.steps = 1;
  second.lr = 1e-12;
  ASSERT_TRUE(TrainVae(second).ok());
  VaeTrainOptions fresh = second;
  fresh.work_dir = TempDir("vae_fresh");
  fresh.init_from.clear();
  ASSERT_TRUE(TrainVae(fresh).ok());
  auto a = CheckVae(first, 1), b = CheckVae(second, 1), c = CheckVae(fresh, 1);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  auto diff = [](const torch::Tensor& x, const torch::Tensor& y) {
    return (x.to(torch::kInt) - y.to(torch::kInt)).abs().max().item<int>();
  };
  EXPECT_LE(diff(a->decoded[0], b->decoded[0]), 1);
  EXPECT_GT(diff(a->decoded[0], c->decoded[0]), 10);
  // init_from a directory without weights is an error naming it.
  VaeTrainOptions bad = TinyVae(TempDir("vae_stage_bad"));
  bad.init_from = TempDir("empty");
  EXPECT_FALSE(TrainVae(bad).ok());
}

TEST_F(TrainTest, DitLossDecreasesAndExportedModelGenerates) {
  DitTrainOptions o = TinyDit(TempDir("dit"), *vae_dir_);
  o.out_dir = TempDir("dit_model");
  auto s = TrainDit(o);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->steps_run, 40);
  EXPECT_LT(s->last_loss, 0.8 * s->first_loss) << s->first_loss << " -> " << s->last_loss;

  auto index = io::ReadJsonFile(o.out_dir + "/model_index.json");
  ASSERT_TRUE(index.ok());
  EXPECT_EQ((*index)["linvideo"]["default_frames"], 5);
  EXPECT_EQ((*index)["linvideo"]["default_width"], 32);
  EXPECT_EQ((*index)["linvideo_training"]["steps"], 40);
  // The VAE config carries the measured latent statistics (not the neutral 0/1).
  auto vae_json = io::ReadJsonFile(o.out_dir + "/vae/config.json");
  ASSERT_TRUE(vae_json.ok());
  auto vae_config = wan::VaeConfig::FromJson(*vae_json);
  ASSERT_TRUE(vae_config.ok()) << vae_config.status();
  EXPECT_NE(vae_config->latents_std[0], 1.0);

  pipeline::PipelineOptions options;
  options.model_dir = o.out_dir;
  auto model = pipeline::TextToVideoPipeline::Create(options);
  ASSERT_TRUE(model.ok()) << model.status();
  pipeline::GenerationParams p;
  p.prompt = "a small red circle moves to the left on a white background";
  auto videos = (*model)->Generate({p});
  ASSERT_TRUE(videos.ok()) << videos.status();
  EXPECT_EQ((*videos)[0].sizes(), (std::vector<int64_t>{5, 32, 32, 3}));

  // The denoising check reads the same folder: errors grow with the noise level, and every
  // prediction decodes to a video of the served size.
  auto check = CheckDit(o.out_dir, 2, {0.1, 0.9});
  ASSERT_TRUE(check.ok()) << check.status();
  ASSERT_EQ(check->mse.size(), 2u);
  EXPECT_GT(check->mse[0], 0.0);
  EXPECT_LT(check->mse[0], check->mse[1]);
  ASSERT_EQ(check->pred.size(), 2u);
  ASSERT_EQ(check->pred[0].size(), 2u);
  EXPECT_EQ(check->pred[0][1].sizes(), check->truth[0].sizes());
  EXPECT_EQ(check->truth[0].sizes(), (std::vector<int64_t>{5, 32, 32, 3}));
  // The detectors scored both clips' predictions at each sigma.
  ASSERT_EQ(check->scores.size(), 2u);
  EXPECT_EQ(check->scores[0].videos, 2);
  EXPECT_EQ(check->scores[1].videos, 2);
  EXPECT_GE(check->scores[0].adherence.background, 0.0);
  EXPECT_LE(check->scores[0].adherence.background, 1.0);
  // Sampled mode: whole guided samples from each x_t. From sigma 0.1 most of the clip survives;
  // from 0.9 the model makes most of it, so the error is larger, and the sample is not the
  // one-step prediction.
  auto sampled = CheckDit(o.out_dir, 2, {0.1, 0.9}, 0, /*sample=*/true);
  ASSERT_TRUE(sampled.ok()) << sampled.status();
  ASSERT_EQ(sampled->mse.size(), 2u);
  EXPECT_GT(sampled->mse[0], 0.0);
  EXPECT_LT(sampled->mse[0], sampled->mse[1]);
  EXPECT_TRUE(sampled->truth[0].equal(check->truth[0]));  // same clips
  EXPECT_EQ(sampled->pred[0][1].sizes(), check->pred[0][1].sizes());
  EXPECT_FALSE(sampled->pred[0][1].equal(check->pred[0][1]));
  EXPECT_EQ(sampled->scores[1].videos, 2);
  auto bad = CheckDit(o.out_dir, 2, {0.0});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("(0, 1]"), std::string::npos) << bad.status();
  bad = CheckDit(o.work_dir, 1, {0.5});
  EXPECT_FALSE(bad.ok());

  // On the model's own training clips: the clips are exactly those scenes, not the fresh ones.
  auto trained = CheckDit(o.out_dir, 2, {0.5}, 0, /*sample=*/false, /*training_clips=*/true);
  ASSERT_TRUE(trained.ok()) << trained.status();
  for (int64_t i = 0; i < 2; ++i) {
    auto clip = data::Render(DitTrainingScene(o, i), o.frames, o.height, o.width);
    ASSERT_TRUE(clip.ok()) << clip.status();
    EXPECT_TRUE(trained->truth[i].equal(*clip)) << i;
    EXPECT_FALSE(trained->truth[i].equal(check->truth[i])) << i;
  }
  bad = CheckDit(o.out_dir, o.clips + 1, {0.5}, 0, false, /*training_clips=*/true);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("the model trained on " + std::to_string(o.clips)),
            std::string::npos)
      << bad.status();
}

TEST_F(TrainTest, DitWithTheRecipesBf16AndObjectWeightingLearns) {
  DitTrainOptions o = TinyDit(TempDir("dit_bf16"), *vae_dir_);
  o.bf16 = true;
  o.object_weight = 4.0;
  o.frame_batch = 6;                     // single-latent-frame samples (the v6 experiment)
  o.scenes = DefaultDitRecipe().scenes;  // centred layouts
  o.out_dir = TempDir("dit_bf16_model");
  auto s = TrainDit(o);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_LT(s->last_loss, 0.8 * s->first_loss) << s->first_loss << " -> " << s->last_loss;
  const std::string log = ReadFile(o.work_dir + "/train_dit.log");
  EXPECT_NE(log.find("object-weighted loss: weight 1 + 4 x mask, mean mask 0."), std::string::npos)
      << log;
  EXPECT_NE(log.find("latent frame mean offsets (stds): "), std::string::npos) << log;
  EXPECT_NE(log.find("per step: 4 clips + 6 single latent frames"), std::string::npos) << log;
  auto index = io::ReadJsonFile(o.out_dir + "/model_index.json");
  ASSERT_TRUE(index.ok());
  EXPECT_EQ((*index)["linvideo_training"]["precision"], "bf16");
  EXPECT_EQ((*index)["linvideo_training"]["object_weight"], 4.0);
  EXPECT_EQ((*index)["linvideo_training"]["frame_batch"], 6);
  EXPECT_EQ((*index)["linvideo_training"]["layout_jitter"], o.scenes.layout_jitter);
  // The exported weights are fp32 and finite.
  auto weights =
      io::ReadSafetensors(o.out_dir + "/transformer/diffusion_pytorch_model.safetensors");
  ASSERT_TRUE(weights.ok()) << weights.status();
  for (const auto& [name, t] : *weights) {
    EXPECT_EQ(t.scalar_type(), torch::kFloat) << name;
    EXPECT_TRUE(t.isfinite().all().item<bool>()) << name;
  }
}

// The single-frame samples take part in the update: with the same clip batches (their stream
// does not depend on frame_batch), adding frames changes the trained weights, and a run is still
// deterministic.
TEST_F(TrainTest, DitSingleFrameSamplesChangeTheUpdateDeterministically) {
  auto run = [&](const std::string& name, int64_t frame_batch) {
    DitTrainOptions o = TinyDit(TempDir(name), *vae_dir_);
    o.steps = 4;
    o.frame_batch = frame_batch;
    o.out_dir = TempDir(name + "_model");
    auto s = TrainDit(o);
    EXPECT_TRUE(s.ok()) << s.status();
    return ReadFile(o.out_dir + "/transformer/diffusion_pytorch_model.safetensors");
  };
  const std::string clips_only = run("dit_frames0", 0);
  const std::string with_frames = run("dit_frames3", 3);
  const std::string again = run("dit_frames3_again", 3);
  ASSERT_FALSE(clips_only.empty());
  EXPECT_NE(clips_only, with_frames);
  EXPECT_EQ(with_frames, again);
}

// The GELU choice: both learn; LibTorch's (models up to v5 were trained with it) and the fused
// kernel (the recipe's since v7) give different weights, and the export records which one.
TEST_F(TrainTest, DitGeluChoiceChangesTheWeightsAndIsRecorded) {
  auto run = [&](const std::string& name, bool fused) {
    DitTrainOptions o = TinyDit(TempDir(name), *vae_dir_);
    o.steps = 4;
    o.bf16 = true;
    o.fused_gelu = fused;
    o.out_dir = TempDir(name + "_model");
    auto s = TrainDit(o);
    EXPECT_TRUE(s.ok()) << s.status();
    auto index = io::ReadJsonFile(o.out_dir + "/model_index.json");
    EXPECT_TRUE(index.ok());
    if (index.ok()) {
      EXPECT_EQ((*index)["linvideo_training"].value("gelu", ""), fused ? "fused" : "aten");
    }
    return ReadFile(o.out_dir + "/transformer/diffusion_pytorch_model.safetensors");
  };
  const std::string aten = run("dit_gelu_aten", false);
  const std::string fused = run("dit_gelu_fused", true);
  ASSERT_FALSE(aten.empty());
  ASSERT_FALSE(fused.empty());
  EXPECT_NE(aten, fused);
  EXPECT_TRUE(DefaultDitRecipe().fused_gelu);  // models/default v7 was trained with the kernel
}

// Straight vs paused-and-resumed, in fp32 and with the recipe's bf16 autocast, object weighting
// and single-frame samples.
class DitResumeTest : public TrainTest, public ::testing::WithParamInterface<bool> {};

TEST_P(DitResumeTest, PausedAndResumedRunIsBitIdentical) {
  const bool recipe_mode = GetParam();
  const std::string tag = recipe_mode ? "_bf16" : "_fp32";
  auto options = [&](const std::string& name) {
    DitTrainOptions o = TinyDit(TempDir(name + tag), *vae_dir_);
    o.steps = 8;
    o.bf16 = recipe_mode;
    o.object_weight = recipe_mode ? 4.0 : 0.0;
    o.frame_batch = recipe_mode ? 3 : 0;
    o.out_dir = TempDir(name + tag + "_model");
    return o;
  };
  DitTrainOptions straight = options("dit_straight");
  ASSERT_TRUE(TrainDit(straight).ok());
  DitTrainOptions paused = options("dit_paused");
  paused.stop_after = 3;
  auto first = TrainDit(paused);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->steps_run, 3);
  paused.stop_after = 0;
  auto second = TrainDit(paused);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->steps_run, 5);
  for (const char* file :
       {"/transformer/diffusion_pytorch_model.safetensors", "/text_encoder/model.safetensors"}) {
    const std::string a = ReadFile(straight.out_dir + file);
    EXPECT_FALSE(a.empty()) << file;
    EXPECT_EQ(a, ReadFile(paused.out_dir + file)) << file;
  }
}

INSTANTIATE_TEST_SUITE_P(Precision, DitResumeTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Bf16Weighted" : "Fp32"; });

TEST_F(TrainTest, BadOptionsAreRejectedWithTheAllowedValues) {
  VaeTrainOptions v = TinyVae(TempDir("bad_vae"));
  v.window = 6;
  auto s = TrainVae(v);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("1 + 4"), std::string::npos) << s.status();
  v.window = 5;
  v.crop = 20;
  s = TrainVae(v);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("multiple of 8"), std::string::npos) << s.status();
  v.crop = 16;
  v.edge_weight = -0.5;
  s = TrainVae(v);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("edge_weight >= 0"), std::string::npos) << s.status();
  v.edge_weight = 0;
  v.first_frame_weight = 0;
  s = TrainVae(v);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("first_frame_weight must be > 0"), std::string::npos)
      << s.status();

  DitTrainOptions d = TinyDit(TempDir("bad_dit"), *vae_dir_);
  d.dit.text_dim = d.t5.dim + 1;
  s = TrainDit(d);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("text_dim"), std::string::npos) << s.status();
  d = TinyDit(TempDir("bad_dit_weight"), *vae_dir_);
  d.object_weight = -1;
  s = TrainDit(d);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("object_weight >= 0"), std::string::npos) << s.status();
  d = TinyDit(TempDir("bad_dit_frames"), *vae_dir_);
  d.frame_batch = -1;
  s = TrainDit(d);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("frame_batch must be >= 0, got -1"), std::string::npos)
      << s.status();
  d = TinyDit(TempDir("bad_dit_jitter"), *vae_dir_);
  d.scenes.layout_jitter = 0.5;
  s = TrainDit(d);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("layout_jitter must be < 0 (random layouts) or in [0, 0.5)"),
            std::string::npos)
      << s.status();
  d = TinyDit(TempDir("bad_dit2"), *vae_dir_);
  d.t5.vocab = 64;  // the tokenizer has 1,024 pieces
  s = TrainDit(d);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("vocab"), std::string::npos) << s.status();
}

TEST(RecipeTest, DefaultModelMeetsTheSizeRequirements) {
  const VaeTrainOptions vae = DefaultVaeRecipe();
  const DitTrainOptions dit = DefaultDitRecipe();
  ASSERT_TRUE(vae.config.Validate().ok());
  ASSERT_TRUE(dit.dit.Validate().ok());
  EXPECT_GE(dit.height, 128);
  EXPECT_GE(dit.width, 128);
  EXPECT_GE(dit.frames, 33);
  const int64_t tokens = (1 + (dit.frames - 1) / vae.config.temporal_stride()) *
                         (dit.height / vae.config.spatial_stride() / dit.dit.patch_size[1]) *
                         (dit.width / vae.config.spatial_stride() / dit.dit.patch_size[2]);
  EXPECT_GE(tokens, 512);
  EXPECT_EQ(dit.dit.text_dim, dit.t5.dim);
  EXPECT_EQ(dit.dit.in_dim, vae.config.z_dim);
  // Stage 3 fine-tunes stage 2's VAE (same config, full-length clips) and adds only the marker.
  const VaeTrainOptions stage2 = DefaultVaeLongRecipe();
  const VaeTrainOptions stage3 = DefaultVaeMarkerRecipe();
  EXPECT_EQ(stage2.frame0_marker, 0.0);
  EXPECT_GT(stage3.frame0_marker, 0.0);
  EXPECT_EQ(stage3.config.ToJson(), vae.config.ToJson());
  EXPECT_EQ(stage3.window, stage2.window);
  EXPECT_EQ(stage3.crop, stage2.crop);
}

}  // namespace
}  // namespace linvideo::core::train

// DMD2 few-step distillation: the distribution-matching gradient on a toy 1-D case (its sign
// moves the generator toward the real distribution; the loss's gradient is the formula), and the
// stage through its real interface on a tiny random model: export -> load -> generate with the
// declared sampler and the lineage, resume to the same weights, and the option errors.
#include "core/posttrain/distill.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/io/json_file.h"
#include "core/pipeline/model_folder.h"
#include "core/pipeline/text_to_video.h"
#include "core/posttrain/trajectory_cache.h"

namespace linvideo::core::posttrain {
namespace {

namespace fs = std::filesystem;

// Gaussian data N(mu, s²) per element, x_t = (1 − σ)x0 + σε: the exact denoiser
// E[x0 | x_t] = mu + (1 − σ)s² / ((1 − σ)²s² + σ²) · (x_t − (1 − σ)mu).
torch::Tensor GaussianDenoiser(const torch::Tensor& x_t, double sigma, double mu, double s) {
  const double a = (1 - sigma) * s * s / ((1 - sigma) * (1 - sigma) * s * s + sigma * sigma);
  return mu + a * (x_t - (1 - sigma) * mu);
}

// The generator's samples come from N(mu_g, 1), the real data is N(mu_r, 1); the fake score is
// exact for the generator's distribution. At every noise level the mean DM gradient points from
// the real mean to the generator's (so descending it moves the samples toward the real data),
// and a few steps of descent on the samples close most of the gap.
TEST(DistributionMatchingTest, GradientMovesTheGeneratorTowardTheRealDistribution) {
  at::Generator gen = at::detail::createCPUGenerator(5);
  for (auto [mu_g, mu_r] : {std::pair(-1.0, 1.0), std::pair(2.0, 0.5)}) {
    for (double sigma : {0.1, 0.5, 0.9}) {
      const torch::Tensor x0 = at::randn({4, 1024}, gen, at::kDouble) + mu_g;
      const torch::Tensor x_t = (1 - sigma) * x0 + sigma * at::randn({4, 1024}, gen, at::kDouble);
      const torch::Tensor grad = DistributionMatchingGradient(
          x0, GaussianDenoiser(x_t, sigma, mu_g, 1.0), GaussianDenoiser(x_t, sigma, mu_r, 1.0));
      const double mean = grad.mean().item<double>();
      EXPECT_GT(mean * (mu_g - mu_r), 0.0) << mu_g << " " << mu_r << " sigma " << sigma;
    }
    // Descent on the samples themselves (the generator as a free point set).
    torch::Tensor x = at::randn({4, 1024}, gen, at::kDouble) + mu_g;
    for (int it = 0; it < 200; ++it) {
      const double sigma = 0.5;
      const torch::Tensor x_t = (1 - sigma) * x + sigma * at::randn({4, 1024}, gen, at::kDouble);
      const double mean_now = x.mean().item<double>();
      const torch::Tensor grad = DistributionMatchingGradient(
          x, GaussianDenoiser(x_t, sigma, mean_now, 1.0), GaussianDenoiser(x_t, sigma, mu_r, 1.0));
      x = x - 0.05 * grad;
    }
    EXPECT_NEAR(x.mean().item<double>(), mu_r, 0.15 * std::abs(mu_g - mu_r));
  }
}

TEST(DistributionMatchingTest, LossGradientIsTheNormalisedDifference) {
  const torch::Tensor x0 = torch::tensor({{1.0, 2.0}, {0.0, -1.0}}, torch::kDouble);
  const torch::Tensor fake = torch::tensor({{1.5, 2.5}, {0.5, -0.5}}, torch::kDouble);
  const torch::Tensor real = torch::tensor({{0.0, 1.0}, {1.0, 0.0}}, torch::kDouble);
  const torch::Tensor grad = DistributionMatchingGradient(x0, fake, real);
  // Per sample: (fake − real) / mean|x0 − real| = [1.5, 1.5] / 1 and [−0.5, −0.5] / 1.
  EXPECT_TRUE(torch::allclose(grad, torch::tensor({{1.5, 1.5}, {-0.5, -0.5}}, torch::kDouble)));
  const torch::Tensor leaf = x0.clone().set_requires_grad(true);
  const torch::Tensor loss = DistributionMatchingLoss(leaf, grad);
  loss.backward();
  EXPECT_TRUE(torch::allclose(leaf.grad(), grad / 4.0));
  EXPECT_NEAR(loss.item<double>(), 0.5 * grad.pow(2).mean().item<double>(), 1e-12);
  EXPECT_FALSE(grad.requires_grad());
}

class DistillTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ =
        new fs::path(fs::temp_directory_path() / ("lv_distill_test_" + std::to_string(getpid())));
    pipeline::RandomModelOptions options;
    options.seed = 9;
    options.tokenizer_model_file =
        std::string(LINVIDEO_SOURCE_DIR) + "/models/tokenizer/spiece.model";
    ASSERT_TRUE(pipeline::WriteRandomModelFolder(Model(), options).ok());
    TrajectoryCacheOptions c;
    c.model_dir = Model();
    c.out_dir = Cache();
    c.videos = 3;
    c.batch = 3;
    c.shard_videos = 3;
    c.seed = 1;
    c.generation.width = 32;
    c.generation.height = 32;
    c.generation.frames = 5;
    c.generation.steps = 2;
    c.generation.guidance = 4.0;
    auto built = BuildTrajectoryCache(c);
    ASSERT_TRUE(built.ok()) << built.status();
  }
  static void TearDownTestSuite() {
    fs::remove_all(*root_);
    delete root_;
  }
  static std::string Model() { return (*root_ / "model").string(); }
  static std::string Cache() { return (*root_ / "cache").string(); }
  static DistillOptions Options(const std::string& name) {
    DistillOptions o;
    o.base_dir = Model();
    o.cache_dir = Cache();
    o.work_dir = (*root_ / (name + "_work")).string();
    o.out_dir = (*root_ / (name + "_out")).string();
    o.steps = 3;
    o.batch = 1;
    o.fake_updates = 2;
    o.lr = 1e-3;
    o.fake_lr = 1e-3;
    o.log_every = 100;
    return o;
  }
  static std::string TransformerBytes(const std::string& dir) {
    std::string all;
    for (const auto& e : fs::directory_iterator(fs::path(dir) / "transformer")) {
      if (e.path().extension() != ".safetensors") continue;
      std::ifstream in(e.path(), std::ios::binary);
      std::stringstream s;
      s << in.rdbuf();
      all += s.str();
    }
    return all;
  }
  static fs::path* root_;
};
fs::path* DistillTest::root_ = nullptr;

TEST_F(DistillTest, ExportDeclaresItsSamplerAndLineageAndServes) {
  DistillOptions o = Options("export");
  o.ema_decay = 0.0;  // the export is the generator itself
  auto s = RunDistillation(o);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(s->finished);
  EXPECT_EQ(s->steps, 3);
  // Two time-scale updates: exactly fake_updates fake-score steps per generator step.
  EXPECT_EQ(s->generator_updates, 3);
  EXPECT_EQ(s->fake_score_updates, 6);
  EXPECT_TRUE(std::isfinite(s->final_dm_loss) && std::isfinite(s->final_fake_loss));
  EXPECT_NE(TransformerBytes(o.out_dir), TransformerBytes(Model()));  // G moved
  auto index = io::ReadJsonFile((fs::path(o.out_dir) / "model_index.json").string());
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ((*index)["linvideo"]["sampler"], "fewstep");
  EXPECT_EQ((*index)["linvideo"]["timesteps"], nlohmann::json({1000, 750, 500, 250}));
  const nlohmann::json& lineage = (*index)["linvideo_distillation"];
  EXPECT_EQ(lineage["method"], "dmd2");
  EXPECT_EQ(lineage["base_weights_sha256"], *TransformerWeightsSha256(Model()));
  EXPECT_EQ(lineage["steps"], 3);
  EXPECT_EQ(lineage["seed"], 0);
  EXPECT_EQ(lineage["fake_updates"], 2);
  EXPECT_EQ(lineage["attention_kinds"], nlohmann::json({"softmax", "softmax"}));
  EXPECT_EQ(lineage["gan_head"], false);
  // Loads with its sampler: 4 fewstep steps by default, nothing else accepted.
  auto pipe = pipeline::TextToVideoPipeline::Create({o.out_dir});
  ASSERT_TRUE(pipe.ok()) << pipe.status();
  EXPECT_EQ((*pipe)->limits().fixed_timesteps, (std::vector<int64_t>{1000, 750, 500, 250}));
  params::GenerationParams p;
  p.prompt = "a small red circle moves to the left on a white background";
  p.width = 32;
  p.height = 32;
  p.frames = 5;
  auto videos = (*pipe)->Generate({p});
  ASSERT_TRUE(videos.ok()) << videos.status();
  EXPECT_EQ((*videos)[0].sizes(), c10::IntArrayRef({5, 32, 32, 3}));
  p.steps = 50;
  EXPECT_EQ((*pipe)->Resolve(p).status().code(), absl::StatusCode::kInvalidArgument);
  // A distilled folder is not distilled again.
  DistillOptions again = Options("again");
  again.base_dir = o.out_dir;
  EXPECT_EQ(RunDistillation(again).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(DistillTest, ResumeContinuesToTheSameWeights) {
  DistillOptions whole = Options("whole");
  ASSERT_TRUE(RunDistillation(whole).ok());
  DistillOptions parts = Options("parts");
  parts.stop_after = 2;
  auto first = RunDistillation(parts);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->finished);
  EXPECT_FALSE(fs::exists(parts.out_dir));
  EXPECT_TRUE(fs::exists(fs::path(parts.work_dir) / "distill.ckpt"));
  auto rest = RunDistillation(parts);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_TRUE(rest->finished);
  EXPECT_EQ(rest->generator_updates, 3);  // counted across the resume
  EXPECT_EQ(rest->fake_score_updates, 6);
  EXPECT_EQ(TransformerBytes(parts.out_dir), TransformerBytes(whole.out_dir));
  std::ifstream log(fs::path(parts.work_dir) / "distill.log");
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_NE(text.str().find("resumed at step 2"), std::string::npos) << text.str();
  auto progress = io::ReadJsonFile((fs::path(parts.work_dir) / "progress.json").string());
  ASSERT_TRUE(progress.ok());
  EXPECT_EQ((*progress)["stage"], "distill");
  EXPECT_TRUE((*progress)["losses"].contains("grad_norm_generator"));
}

// A resume with other training options is refused (the checkpoint was made with the first ones,
// and the lineage would name only the second), unless allowed; then the change is recorded.
TEST_F(DistillTest, ResumeWithOtherOptionsIsRefusedUnlessAllowed) {
  DistillOptions o = Options("changed");
  o.stop_after = 1;
  auto first = RunDistillation(o);
  ASSERT_TRUE(first.ok()) << first.status();
  auto run = io::ReadJsonFile((fs::path(o.work_dir) / "run.json").string());
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ((*run)["options"]["real-guidance"], 3.0);
  EXPECT_EQ((*run)["options"]["lr"], 1e-3);
  o.stop_after = 0;
  o.steps = 2;  // the step count is not a training option here (the rates are constant)
  o.real_guidance = 2.0;
  o.lr = 5e-4;
  auto refused = RunDistillation(o);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_NE(refused.status().message().find(
                "checkpointed at step 1 with --lr 0.001, --real-guidance 3.0; this command asks "
                "for --lr 0.0005, --real-guidance 2.0"),
            std::string::npos)
      << refused.status();
  EXPECT_NE(refused.status().message().find("--allow-option-changes"), std::string::npos);
  EXPECT_FALSE(fs::exists(o.out_dir));
  o.allow_option_changes = true;
  auto allowed = RunDistillation(o);
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  ASSERT_TRUE(allowed->finished);
  auto index = io::ReadJsonFile((fs::path(o.out_dir) / "model_index.json").string());
  ASSERT_TRUE(index.ok()) << index.status();
  const nlohmann::json& changes = (*index)["linvideo_distillation"]["option_changes"];
  ASSERT_EQ(changes.size(), 1u) << changes.dump();
  EXPECT_EQ(changes[0]["step"], 1);
  EXPECT_EQ(changes[0]["changed"]["real-guidance"], nlohmann::json({{"from", 3.0}, {"to", 2.0}}));
  EXPECT_EQ(changes[0]["changed"].size(), 2u) << changes.dump();  // lr and real-guidance only
  EXPECT_EQ((*index)["linvideo_distillation"]["real_guidance"], 2.0);
  // A run that never changed its options has no such entry (ExportDeclares... above: checked
  // here on the same fixture).
  DistillOptions plain = Options("plain");
  plain.steps = 1;
  ASSERT_TRUE(RunDistillation(plain).ok());
  auto plain_index = io::ReadJsonFile((fs::path(plain.out_dir) / "model_index.json").string());
  ASSERT_TRUE(plain_index.ok());
  EXPECT_FALSE((*plain_index)["linvideo_distillation"].contains("option_changes"));
}

// --real: the real score may be the teacher the base was converted from, and nothing else.
TEST_F(DistillTest, TheRealScoreIsTheBaseOrTheTeacherItWasConvertedFrom) {
  const std::string teacher = (*root_ / "teacher").string();
  pipeline::RandomModelOptions options;
  options.seed = 10;  // other weights, the same dimensions
  options.tokenizer_model_file =
      std::string(LINVIDEO_SOURCE_DIR) + "/models/tokenizer/spiece.model";
  ASSERT_TRUE(pipeline::WriteRandomModelFolder(teacher, options).ok());
  auto teacher_sha = TransformerWeightsSha256(teacher);
  ASSERT_TRUE(teacher_sha.ok()) << teacher_sha.status();

  DistillOptions stranger = Options("stranger");  // base records no conversion
  stranger.real_dir = teacher;
  auto refused = RunDistillation(stranger);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
  EXPECT_NE(refused.status().message().find("is neither --base nor the teacher"), std::string::npos)
      << refused.status();

  // A base converted from `teacher`: its lineage names the teacher's weights.
  const fs::path converted = *root_ / "converted";
  fs::copy(Model(), converted, fs::copy_options::recursive);
  auto index = io::ReadJsonFile((converted / "model_index.json").string());
  ASSERT_TRUE(index.ok()) << index.status();
  (*index)["linvideo_conversion"] = {{"base_weights_sha256", *teacher_sha}};
  ASSERT_TRUE(io::WriteJsonFile((converted / "model_index.json").string(), *index).ok());
  DistillOptions o = Options("teacher_real");
  o.base_dir = converted.string();
  o.real_dir = teacher;
  o.steps = 1;
  auto run = RunDistillation(o);
  ASSERT_TRUE(run.ok()) << run.status();
  auto record = io::ReadJsonFile((fs::path(o.work_dir) / "run.json").string());
  ASSERT_TRUE(record.ok());
  EXPECT_EQ((*record)["options"]["real"], "transformer sha256 " + *teacher_sha);
  auto out = io::ReadJsonFile((fs::path(o.out_dir) / "model_index.json").string());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)["linvideo_distillation"]["real_model"]["weights_sha256"], *teacher_sha);
  // The teacher's scores differ from the base's: the same run with the base as real score
  // (--real naming the base itself, recorded as no change) ends on other weights.
  DistillOptions same = o;
  same.work_dir = (*root_ / "base_real_work").string();
  same.out_dir = (*root_ / "base_real_out").string();
  same.real_dir = converted.string();
  ASSERT_TRUE(RunDistillation(same).ok());
  auto same_record = io::ReadJsonFile((fs::path(same.work_dir) / "run.json").string());
  ASSERT_TRUE(same_record.ok());
  EXPECT_FALSE((*same_record)["options"].contains("real"));
  auto same_out = io::ReadJsonFile((fs::path(same.out_dir) / "model_index.json").string());
  ASSERT_TRUE(same_out.ok());
  EXPECT_EQ((*same_out)["linvideo_distillation"]["real_model"], "base");
  EXPECT_NE(TransformerBytes(o.out_dir), TransformerBytes(same.out_dir));
}

TEST_F(DistillTest, BadOptionsSayWhatIsAllowed) {
  struct Case {
    void (*mutate)(DistillOptions&);
    const char* expect;
  };
  const Case cases[] = {
      {[](DistillOptions& o) {
         o.timesteps = {250, 500};
       },
       "strictly decreasing integers"},
      {[](DistillOptions& o) { o.timesteps = {}; }, "--timesteps needs 1..16 entries"},
      {[](DistillOptions& o) { o.fake_updates = 0; }, "--fake-updates must be in [1, 100]"},
      {[](DistillOptions& o) { o.min_t = 0.99; }, "need 0 < --min-t < --max-t < 1"},
      {[](DistillOptions& o) { o.real_guidance = 50; }, "--real-guidance must be in [0, 20]"},
      {[](DistillOptions& o) { o.ema_decay = 1.0; }, "--ema-decay must be in [0, 1)"},
      {[](DistillOptions& o) { o.cache_dir.clear(); }, "needs --base"},
  };
  for (const Case& c : cases) {
    DistillOptions o = Options("bad");
    c.mutate(o);
    auto s = RunDistillation(o);
    ASSERT_FALSE(s.ok()) << c.expect;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find(c.expect), std::string::npos) << s.status();
  }
  DistillOptions exists = Options("exists");
  fs::create_directories(exists.out_dir);
  EXPECT_EQ(RunDistillation(exists).status().code(), absl::StatusCode::kAlreadyExists);
  // A cache made from other weights is refused.
  const std::string other = (*root_ / "other").string();
  pipeline::RandomModelOptions options;
  options.seed = 10;
  options.tokenizer_model_file =
      std::string(LINVIDEO_SOURCE_DIR) + "/models/tokenizer/spiece.model";
  ASSERT_TRUE(pipeline::WriteRandomModelFolder(other, options).ok());
  DistillOptions mismatch = Options("mismatch");
  mismatch.base_dir = other;
  auto m = RunDistillation(mismatch);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(m.status().message().find("neither --base"), std::string::npos) << m.status();
}

}  // namespace
}  // namespace linvideo::core::posttrain

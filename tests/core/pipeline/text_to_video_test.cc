// The text-to-video pipeline on a random-weights tiny model folder written by the project's own
// writer: defaults and validation, the step-level API (requests at different steps in one batch
// give what each gets alone), reproducibility and batching over prompts.

#include "core/pipeline/text_to_video.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "core/io/json_file.h"
#include "core/pipeline/model_folder.h"

namespace linvideo::core::pipeline {
namespace {

namespace fs = std::filesystem;

class TextToVideoTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(
        (fs::temp_directory_path() / ("lv_pipeline_test_" + std::to_string(getpid()))).string());
    RandomModelOptions options;
    options.seed = 3;
    options.tokenizer_model_file =
        std::string(LINVIDEO_SOURCE_DIR) + "/models/tokenizer/spiece.model";
    auto written = WriteRandomModelFolder(*dir_, options);
    ASSERT_TRUE(written.ok()) << written.status();
    auto p = TextToVideoPipeline::Create({*dir_});
    ASSERT_TRUE(p.ok()) << p.status();
    pipeline_ = p->release();
  }
  static void TearDownTestSuite() {
    delete pipeline_;
    fs::remove_all(*dir_);
    delete dir_;
  }
  static GenerationParams Params(const std::string& prompt, uint64_t seed) {
    GenerationParams p;
    p.prompt = prompt;
    p.width = 32;
    p.height = 32;
    p.frames = 5;
    p.steps = 3;
    p.seed = seed;
    return p;
  }
  static std::string* dir_;
  static TextToVideoPipeline* pipeline_;
};
std::string* TextToVideoTest::dir_ = nullptr;
TextToVideoPipeline* TextToVideoTest::pipeline_ = nullptr;

TEST_F(TextToVideoTest, ResolvesModelDefaultsAndRejectsBadParamsWithAllowedValues) {
  GenerationParams p;
  p.prompt = "a cat";
  auto r = pipeline_->Resolve(p);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->width, 64);  // tiny model defaults from model_index.json
  EXPECT_EQ(r->frames, 5);
  EXPECT_EQ(r->steps, 4);
  EXPECT_DOUBLE_EQ(r->guidance, 5.0);

  struct Case {
    GenerationParams p;
    std::string expect;
  };
  std::vector<Case> cases;
  auto with = [&](auto mutate, std::string expect) {
    GenerationParams q = Params("x", 0);
    mutate(q);
    cases.push_back({q, expect});
  };
  with([](GenerationParams& q) { q.prompt.clear(); }, "prompt is empty");
  with([](GenerationParams& q) { q.width = 40; }, "multiple of 16");
  with([](GenerationParams& q) { q.height = 512; }, "multiple of 16 in [16, 256]");
  with([](GenerationParams& q) { q.frames = 8; }, "4k+1");
  with([](GenerationParams& q) { q.steps = 1000; }, "1..100");
  with([](GenerationParams& q) { q.guidance = 50; }, "0..20");
  with([](GenerationParams& q) { q.shift = 0.0; }, "(0, 100]");
  for (const auto& c : cases) {
    auto bad = pipeline_->Resolve(c.p);
    ASSERT_FALSE(bad.ok()) << c.expect;
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(bad.status().message().find(c.expect), std::string::npos) << bad.status();
  }
}

TEST_F(TextToVideoTest, GenerateIsReproducibleAndSeedSensitive) {
  auto a = pipeline_->Generate({Params("a red circle", 1)});
  auto b = pipeline_->Generate({Params("a red circle", 1)});
  auto c = pipeline_->Generate({Params("a red circle", 2)});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << a.status();
  const auto& v = (*a)[0];
  EXPECT_EQ(v.sizes().vec(), (std::vector<int64_t>{5, 32, 32, 3}));
  EXPECT_EQ(v.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(torch::equal(v, (*b)[0]));
  EXPECT_FALSE(torch::equal(v, (*c)[0]));
}

TEST_F(TextToVideoTest, BatchedPromptsEqualEachAlone) {
  auto both = pipeline_->Generate({Params("a red circle", 1), Params("a blue square", 9)});
  auto first = pipeline_->Generate({Params("a red circle", 1)});
  auto second = pipeline_->Generate({Params("a blue square", 9)});
  ASSERT_TRUE(both.ok() && first.ok() && second.ok()) << both.status();
  // Batched matmuls may differ in the last bits; frames are uint8 after the VAE.
  auto close = [](const torch::Tensor& x, const torch::Tensor& y) {
    return (x.to(torch::kInt) - y.to(torch::kInt)).abs().max().item<int>() <= 1;
  };
  EXPECT_TRUE(close((*both)[0], (*first)[0]));
  EXPECT_TRUE(close((*both)[1], (*second)[0]));
}

TEST_F(TextToVideoTest, Bf16VaeDecodesCloseToFp32) {
  PipelineOptions options;
  options.model_dir = *dir_;
  options.vae_dtype = torch::kBFloat16;
  auto bf16 = TextToVideoPipeline::Create(options);
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  auto a = pipeline_->Generate({Params("a red circle", 1)});
  auto b = (*bf16)->Generate({Params("a red circle", 1)});
  ASSERT_TRUE(a.ok() && b.ok()) << b.status();
  const torch::Tensor& x = (*a)[0];
  const torch::Tensor& y = (*b)[0];
  ASSERT_EQ(y.sizes(), x.sizes());
  EXPECT_EQ(y.scalar_type(), torch::kUInt8);
  // Same DiT (fp32) and latents; only the decoder's precision differs: close, not identical.
  const torch::Tensor diff = (x.to(torch::kFloat) - y.to(torch::kFloat)).abs();
  EXPECT_FALSE(torch::equal(x, y)) << "the bf16 VAE was not used";
  EXPECT_LT(diff.mean().item<double>(), 2.0);
  EXPECT_LE(diff.max().item<double>(), 24.0);
}

TEST_F(TextToVideoTest, Fp16IsRefusedSayingWhatIsAllowed) {
  for (const bool vae_only : {false, true}) {
    PipelineOptions options;
    options.model_dir = *dir_;
    if (vae_only) {
      options.vae_dtype = torch::kHalf;
    } else {
      options.device.dtype = torch::kHalf;
    }
    auto p = TextToVideoPipeline::Create(options);
    ASSERT_FALSE(p.ok()) << "fp16 accepted (vae_only=" << vae_only << ")";
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find("allowed: bf16 (GPUs) or fp32"), std::string::npos)
        << p.status();
  }
}

TEST_F(TextToVideoTest, StepApiRunsRequestsAtDifferentStepsInOneBatch) {
  auto emb = pipeline_->EncodeText({"a red circle", "a blue square", ""});
  ASSERT_TRUE(emb.ok()) << emb.status();
  ASSERT_EQ(emb->size(), 3u);
  EXPECT_EQ((*emb)[0].sizes().vec(), (std::vector<int64_t>{32, 64}));  // [text_len, text_dim]

  auto pa = pipeline_->Resolve(Params("a red circle", 4));
  auto pb = pipeline_->Resolve(Params("a blue square", 5));
  ASSERT_TRUE(pa.ok() && pb.ok());
  auto solo_a = pipeline_->InitRequest(*pa, (*emb)[0], (*emb)[2]);
  auto solo_b = pipeline_->InitRequest(*pb, (*emb)[1], (*emb)[2]);
  auto a = pipeline_->InitRequest(*pa, (*emb)[0], (*emb)[2]);
  auto b = pipeline_->InitRequest(*pb, (*emb)[1], (*emb)[2]);
  ASSERT_TRUE(solo_a.ok() && solo_b.ok() && a.ok() && b.ok());
  while (!(*solo_a)->done()) ASSERT_TRUE(pipeline_->Step({solo_a->get()}).ok());
  while (!(*solo_b)->done()) ASSERT_TRUE(pipeline_->Step({solo_b->get()}).ok());
  // a runs one step alone, then joins b's batch: they run at different steps together.
  ASSERT_TRUE(pipeline_->Step({a->get()}).ok());
  while (!(*a)->done() || !(*b)->done()) {
    std::vector<RequestState*> batch;
    if (!(*a)->done()) batch.push_back(a->get());
    if (!(*b)->done()) batch.push_back(b->get());
    ASSERT_TRUE(pipeline_->Step(batch).ok());
  }
  EXPECT_EQ((*a)->step, 3);
  EXPECT_TRUE(torch::allclose((*a)->latents, (*solo_a)->latents, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose((*b)->latents, (*solo_b)->latents, 1e-4, 1e-5));
  // A finished request cannot be stepped again, and shapes must match within a batch.
  EXPECT_EQ(pipeline_->Step({a->get()}).code(), absl::StatusCode::kFailedPrecondition);
  auto frames = pipeline_->Decode(**a);
  ASSERT_TRUE(frames.ok()) << frames.status();
  EXPECT_EQ(frames->sizes().vec(), (std::vector<int64_t>{5, 32, 32, 3}));
}

// A step that fails for one request of a batch changes no request's state (the server then steps
// them again one at a time): here the second request's solver expects another step index.
TEST_F(TextToVideoTest, AFailedBatchStepChangesNoState) {
  auto emb = pipeline_->EncodeText({"a red circle", "a blue square", ""});
  ASSERT_TRUE(emb.ok()) << emb.status();
  auto pa = pipeline_->Resolve(Params("a red circle", 4));
  auto pb = pipeline_->Resolve(Params("a blue square", 4));
  ASSERT_TRUE(pa.ok() && pb.ok());
  auto solo = pipeline_->InitRequest(*pa, (*emb)[0], (*emb)[2]);
  auto a = pipeline_->InitRequest(*pa, (*emb)[0], (*emb)[2]);
  auto b = pipeline_->InitRequest(*pb, (*emb)[1], (*emb)[2]);
  ASSERT_TRUE(solo.ok() && a.ok() && b.ok());
  ASSERT_TRUE(pipeline_->Step({a->get()}).ok());
  ASSERT_TRUE(pipeline_->Step({solo->get()}).ok());
  (*b)->sampler.unipc.next_step = 3;  // out of order: its solver refuses the step
  const torch::Tensor a_before = (*a)->latents.clone(), b_before = (*b)->latents.clone();
  const absl::Status failed = pipeline_->Step({a->get(), b->get()});
  ASSERT_EQ(failed.code(), absl::StatusCode::kFailedPrecondition) << failed;
  EXPECT_EQ((*a)->step, 1);
  EXPECT_EQ((*b)->step, 0);
  EXPECT_EQ((*a)->sampler.unipc.next_step, 1);
  EXPECT_TRUE(torch::equal((*a)->latents, a_before));
  EXPECT_TRUE(torch::equal((*b)->latents, b_before));
  // Stepped on alone, the first request ends as it would have without the failed batch.
  while (!(*a)->done()) ASSERT_TRUE(pipeline_->Step({a->get()}).ok());
  while (!(*solo)->done()) ASSERT_TRUE(pipeline_->Step({solo->get()}).ok());
  EXPECT_TRUE(torch::equal((*a)->latents, (*solo)->latents));
}

// A folder that declares a distilled model's sampler in model_index.json serves only that: fewstep
// over its list by default, reproducible per seed, and the same alone or batched at another step.
TEST_F(TextToVideoTest, DeclaredFewStepSamplerIsTheDefaultAndBatchesLikeAlone) {
  const std::string distilled = *dir_ + "_4step";
  fs::remove_all(distilled);
  fs::copy(*dir_, distilled, fs::copy_options::recursive);
  const std::string index_path = distilled + "/model_index.json";
  auto index = io::ReadJsonFile(index_path);
  ASSERT_TRUE(index.ok()) << index.status();
  (*index)["linvideo"]["sampler"] = "fewstep";
  (*index)["linvideo"]["timesteps"] = {1000, 750, 500, 250};
  ASSERT_TRUE(io::WriteJsonFile(index_path, *index).ok());
  auto created = TextToVideoPipeline::Create({distilled});
  ASSERT_TRUE(created.ok()) << created.status();
  TextToVideoPipeline& p = **created;
  EXPECT_EQ(p.limits().fixed_timesteps, (std::vector<int64_t>{1000, 750, 500, 250}));

  GenerationParams unset = Params("a red circle", 1);
  unset.steps = 0;
  unset.shift = 5.0;
  auto r = p.Resolve(unset);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->sampler, SamplerKind::kFewStep);
  EXPECT_EQ(r->steps, 4);
  EXPECT_FALSE(params::UsesCfg(*r));
  EXPECT_EQ(p.Resolve(Params("a red circle", 1)).status().code(),
            absl::StatusCode::kInvalidArgument);  // 3 steps

  auto emb = p.EncodeText({"a red circle", "a blue square", ""});
  ASSERT_TRUE(emb.ok()) << emb.status();
  GenerationParams second = unset;
  second.prompt = "a blue square";
  second.seed = 2;
  auto rb = p.Resolve(second);
  ASSERT_TRUE(rb.ok());
  auto solo = p.InitRequest(*r, (*emb)[0], (*emb)[2]);
  auto again = p.InitRequest(*r, (*emb)[0], (*emb)[2]);
  auto other = p.InitRequest(*rb, (*emb)[1], (*emb)[2]);
  ASSERT_TRUE(solo.ok() && again.ok() && other.ok()) << solo.status();
  EXPECT_EQ((*solo)->schedule.timesteps, (std::vector<int64_t>{999, 937, 833, 625}));
  while (!(*solo)->done()) ASSERT_TRUE(p.Step({solo->get()}).ok());
  ASSERT_TRUE(p.Step({other->get()}).ok());  // `other` is one step ahead in the batch
  while (!(*again)->done()) {
    std::vector<RequestState*> batch = {again->get()};
    if (!(*other)->done()) batch.push_back(other->get());
    ASSERT_TRUE(p.Step(batch).ok());
  }
  EXPECT_TRUE(torch::allclose((*again)->latents, (*solo)->latents, 1e-4, 1e-5));
  EXPECT_FALSE(torch::allclose((*other)->latents, (*solo)->latents, 1e-2, 1e-2));

  // A malformed declaration is refused when the folder loads, naming the file.
  (*index)["linvideo"]["timesteps"] = {250, 500};
  ASSERT_TRUE(io::WriteJsonFile(index_path, *index).ok());
  auto bad = TextToVideoPipeline::Create({distilled});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("model_index.json"), std::string::npos) << bad.status();
  EXPECT_NE(bad.status().message().find("strictly decreasing"), std::string::npos) << bad.status();
  (*index)["linvideo"]["timesteps"] = "1000,500";
  ASSERT_TRUE(io::WriteJsonFile(index_path, *index).ok());
  bad = TextToVideoPipeline::Create({distilled});
  EXPECT_NE(bad.status().message().find("must be an array of integers"), std::string::npos)
      << bad.status();
  fs::remove_all(distilled);
}

TEST_F(TextToVideoTest, MissingOrBrokenModelFoldersGiveClearErrors) {
  auto missing = TextToVideoPipeline::Create({"/nonexistent/model"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  const std::string broken = *dir_ + "_broken";
  fs::create_directories(broken);
  fs::copy(*dir_, broken, fs::copy_options::recursive);
  fs::remove(fs::path(broken) / "vae" / "diffusion_pytorch_model.safetensors");
  auto r = TextToVideoPipeline::Create({broken});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("vae"), std::string::npos) << r.status();
  fs::remove_all(broken);
}

}  // namespace
}  // namespace linvideo::core::pipeline

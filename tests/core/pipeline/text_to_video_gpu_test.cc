// The text-to-video pipeline on CUDA (label gpu; skips without a CUDA device): noise drawn on the
// CPU from the request's generator and moved once, latents and sampler state on the device, only
// uint8 frames back; the same video as the CPU within TF32's error.

#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>

#include "core/pipeline/model_folder.h"
#include "core/pipeline/text_to_video.h"

namespace linvideo::core::pipeline {
namespace {

namespace fs = std::filesystem;

class TextToVideoGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
    dir_ =
        (fs::temp_directory_path() / ("lv_pipeline_gpu_test_" + std::to_string(getpid()))).string();
    RandomModelOptions options;
    options.seed = 3;
    options.tokenizer_model_file =
        std::string(LINVIDEO_SOURCE_DIR) + "/models/tokenizer/spiece.model";
    auto written = WriteRandomModelFolder(dir_, options);
    ASSERT_TRUE(written.ok()) << written.status();
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::unique_ptr<TextToVideoPipeline> Make(c10::Device device, c10::ScalarType dtype) {
    PipelineOptions o;
    o.model_dir = dir_;
    o.device = {device, dtype};
    auto p = TextToVideoPipeline::Create(o);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : nullptr;
  }
  static GenerationParams Params(uint64_t seed) {
    GenerationParams p;
    p.prompt = "a red circle moves left";
    p.width = 32;
    p.height = 32;
    p.frames = 5;
    p.steps = 3;
    p.seed = seed;
    return p;  // guidance: the model's default (5, CFG on)
  }
  // Peak signal-to-noise ratio of two uint8 videos, in dB.
  static double Psnr(const torch::Tensor& a, const torch::Tensor& b) {
    const double mse = (a.to(torch::kDouble) - b.to(torch::kDouble)).pow(2).mean().item<double>();
    return mse == 0 ? INFINITY : 10 * std::log10(255.0 * 255.0 / mse);
  }
  std::string dir_;
};

TEST_F(TextToVideoGpuTest, CudaFp32GivesTheCpuVideoAndOnlyFramesComeBack) {
  const c10::Device cuda(c10::kCUDA, 0);
  auto cpu = Make(c10::Device(c10::kCPU), c10::kFloat);
  auto gpu = Make(cuda, c10::kFloat);
  ASSERT_TRUE(cpu && gpu);
  auto a = cpu->Generate({Params(11), Params(12)});
  auto b = gpu->Generate({Params(11), Params(12)});
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE((*b)[i].device().is_cpu());
    EXPECT_EQ((*b)[i].scalar_type(), torch::kUInt8);
    EXPECT_EQ((*b)[i].sizes(), (*a)[i].sizes());
    // cuDNN convolutions run in TF32 by default (10-bit mantissa): a few levels at most.
    EXPECT_GE(Psnr((*a)[i], (*b)[i]), 35.0) << "video " << i;
  }

  // The step-level API the server drives: state on the device between steps.
  auto emb = gpu->EncodeText({"a red circle moves left", ""});
  ASSERT_TRUE(emb.ok()) << emb.status();
  auto state = gpu->InitRequest(*gpu->Resolve(Params(11)), (*emb)[0], (*emb)[1]);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ((*state)->latents.device(), cuda);
  EXPECT_EQ((*state)->latents.scalar_type(), torch::kFloat);
  while (!(*state)->done()) ASSERT_TRUE(gpu->Step({state->get()}).ok());
  EXPECT_EQ((*state)->latents.device(), cuda);
  auto frames = gpu->Decode(**state);
  ASSERT_TRUE(frames.ok()) << frames.status();
  EXPECT_TRUE(frames->device().is_cpu());
  // Same request, same batch shape (cond + uncond of one request) through Generate: the same video.
  auto solo = gpu->Generate({Params(11)});
  ASSERT_TRUE(solo.ok()) << solo.status();
  EXPECT_TRUE(torch::equal(*frames, (*solo)[0])) << "step-level and Generate differ";
}

TEST_F(TextToVideoGpuTest, CudaBf16Runs) {
  auto gpu = Make(c10::Device(c10::kCUDA, 0), c10::kBFloat16);
  ASSERT_TRUE(gpu);
  auto v = gpu->Generate({Params(11)});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE((*v)[0].device().is_cpu());
  EXPECT_EQ((*v)[0].sizes(), (std::vector<int64_t>{5, 32, 32, 3}));
}

}  // namespace
}  // namespace linvideo::core::pipeline

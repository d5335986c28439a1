// Model folder layouts (core/pipeline/model_folder.h): a Wan2.1-T2V folder as the official release
// ships it, with the VAE and umT5 as torch.save files, resolves to all four components; the files
// themselves are read by core/io/torch_checkpoint (tests/core/io, tests/tools).

#include "core/pipeline/model_folder.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/io/json_file.h"
#include "core/models/wan/wan_config.h"

namespace linvideo::core::pipeline {
namespace {

namespace fs = std::filesystem;

class OfficialFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("lv_model_folder_test_" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "google" / "umt5-xxl");
    ASSERT_TRUE(
        io::WriteJsonFile((root_ / "config.json").string(), wan::WanConfig().ToJson()).ok());
    for (const char* f : {"diffusion_pytorch_model.safetensors", "google/umt5-xxl/spiece.model"}) {
      std::ofstream(root_ / f) << "x";
    }
  }
  void TearDown() override { fs::remove_all(root_); }
  void Touch(const std::string& name) { std::ofstream(root_ / name) << "x"; }
  fs::path root_;
};

TEST_F(OfficialFolder, TheReleasesTorchSaveFilesAreItsVaeAndTextEncoder) {
  Touch("Wan2.1_VAE.pth");
  Touch("models_t5_umt5-xxl-enc-bf16.pth");
  auto folder = ResolveModelFolder(root_.string());
  ASSERT_TRUE(folder.ok()) << folder.status();
  EXPECT_FALSE(folder->diffusers);
  ASSERT_TRUE(folder->transformer && folder->vae && folder->text_encoder && folder->tokenizer);
  EXPECT_EQ(folder->transformer->weights_stem, "diffusion_pytorch_model");
  EXPECT_EQ(folder->vae->weights_stem, "Wan2.1_VAE");
  EXPECT_EQ(folder->vae->config_file, "");  // the Wan 2.1 VAE's own config
  EXPECT_EQ(folder->text_encoder->weights_stem, "models_t5_umt5-xxl-enc-bf16");
  EXPECT_EQ(folder->tokenizer->dir, (root_ / "google" / "umt5-xxl").string());
  // A conversion replacing the VAE's weights covers the .pth it replaces, not the DiT's file.
  WeightsRewrite vae = RewriteOf(*folder->vae, folder->root, "Wan2.1_VAE");
  EXPECT_TRUE(vae.Covers("Wan2.1_VAE.pth"));
  EXPECT_TRUE(vae.Covers("Wan2.1_VAE.safetensors"));
  EXPECT_FALSE(vae.Covers("models_t5_umt5-xxl-enc-bf16.pth"));
  EXPECT_FALSE(vae.Covers("diffusion_pytorch_model.safetensors"));
  // A DiT without a stem (its file not named diffusion_pytorch_model) still leaves them alone.
  WeightsRewrite dit{".", "", "diffusion_pytorch_model"};
  EXPECT_TRUE(dit.Covers("other_name.safetensors"));
  EXPECT_FALSE(dit.Covers("Wan2.1_VAE.pth"));
  EXPECT_FALSE(dit.Covers("models_t5_umt5-xxl-enc-bf16.pth"));
  WeightsRewrite vae_folder{"vae", "", "diffusion_pytorch_model"};  // diffusers: its own folder
  EXPECT_TRUE(vae_folder.Covers("vae/Wan2.1_VAE.pth"));
}

TEST_F(OfficialFolder, SafetensorsOfTheSameStemsStillWork) {
  Touch("Wan2.1_VAE.safetensors");
  auto folder = ResolveModelFolder(root_.string());
  ASSERT_TRUE(folder.ok()) << folder.status();
  ASSERT_TRUE(folder->vae);
  EXPECT_EQ(folder->vae->weights_stem, "Wan2.1_VAE");
  EXPECT_FALSE(folder->text_encoder);  // neither file: no text encoder, said when it is loaded
}

// Weights are read in the file's dtype and converted into each parameter's: a bf16 folder loads
// the fp32 folder's values rounded to bf16, in every component.
TEST(ModelFolderLoad, Bf16FilesLoadAsTheirValuesInEveryComponent) {
  const fs::path root =
      fs::temp_directory_path() / ("lv_model_folder_bf16_" + std::to_string(getpid()));
  fs::remove_all(root);
  RandomModelOptions o;
  o.seed = 5;
  o.tokenizer_model_file = std::string(LINVIDEO_SOURCE_DIR) + "/models/tokenizer/spiece.model";
  ASSERT_TRUE(WriteRandomModelFolder((root / "fp32").string(), o).ok());
  o.dtype = c10::kBFloat16;
  ASSERT_TRUE(WriteRandomModelFolder((root / "bf16").string(), o).ok());
  auto a = ResolveModelFolder((root / "fp32").string());
  auto b = ResolveModelFolder((root / "bf16").string());
  ASSERT_TRUE(a.ok() && b.ok());
  auto rounded = [](const torch::Tensor& t) { return t.to(torch::kBFloat16).to(t.scalar_type()); };
  auto same = [&](const torch::nn::Module& x, const torch::nn::Module& y, const char* what) {
    const auto px = x.named_parameters(), py = y.named_parameters();
    ASSERT_EQ(px.size(), py.size()) << what;
    for (const auto& p : px) {
      const torch::Tensor& other = py[p.key()];
      EXPECT_EQ(other.scalar_type(), p.value().scalar_type()) << what << " " << p.key();
      EXPECT_TRUE(torch::equal(other, rounded(p.value()))) << what << " " << p.key();
    }
  };
  auto dit_a = LoadDit(*a->transformer, {});
  auto dit_b = LoadDit(*b->transformer, {});
  ASSERT_TRUE(dit_a.ok() && dit_b.ok()) << dit_b.status();
  same(**dit_a, **dit_b, "dit");
  auto t5_a = LoadTextEncoder(*a->text_encoder, {});
  auto t5_b = LoadTextEncoder(*b->text_encoder, {});
  ASSERT_TRUE(t5_a.ok() && t5_b.ok()) << t5_b.status();
  same(**t5_a, **t5_b, "text encoder");
  auto vae_a = LoadVae(*a->vae, {});
  auto vae_b = LoadVae(*b->vae, {});
  ASSERT_TRUE(vae_a.ok() && vae_b.ok()) << vae_b.status();
  same(**vae_a, **vae_b, "vae");
  fs::remove_all(root);
}

}  // namespace
}  // namespace linvideo::core::pipeline

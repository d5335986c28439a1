// Model folder layouts (core/pipeline/model_folder.h): a Wan2.1-T2V folder as the official release
// ships it, with the VAE and umT5 as torch.save files, resolves to all four components; the files
// themselves are read by core/io/torch_checkpoint (tests/core/io, tests/tools).

#include "core/pipeline/model_folder.h"

#include <gtest/gtest.h>
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

}  // namespace
}  // namespace linvideo::core::pipeline

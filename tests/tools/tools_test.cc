// End-to-end tests of the offline tools through their command lines: a random-weights tiny model
// folder written by the project's own writer, inspected, converted, run component by component and
// generated end to end into an MP4 that is decoded back.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>

#include "core/io/json_file.h"
#include "core/io/safetensors.h"
#include "media/bytes_io.h"
#include "media/video_decoder.h"

namespace fs = std::filesystem;

namespace {

const std::string kBin = std::string(LINVIDEO_BINARY_DIR) + "/tools/";

struct Result {
  int code;
  std::string output;
};

Result RunCommand(const std::string& command) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

class ToolsTest : public ::testing::Test {
 protected:
  // `linvideo-model forward` of `component` on `model` with `inputs`: its "out" tensor (undefined,
  // with a test failure, when the command or the read fails).
  static torch::Tensor Forward(const std::string& model, const std::string& component,
                               const std::string& inputs, const std::string& output) {
    Result r = RunCommand(kBin + "linvideo-model forward --model " + model + " --component " +
                          component + " --inputs " + inputs + " --output " + output);
    if (r.code != 0) {
      ADD_FAILURE() << component << " on " << model << ": " << r.output;
      return {};
    }
    auto t = linvideo::core::io::ReadSafetensors(output);
    if (!t.ok() || !t->count("out")) {
      ADD_FAILURE() << component << ": no output tensor in " << output;
      return {};
    }
    return t->at("out");
  }

  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("linvideo_tools_test_" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    model_ = new std::string((*dir_ / "tiny").string());
    Result r = RunCommand(kBin + "linvideo-model init --config tiny --seed 7 " + *model_);
    ASSERT_EQ(r.code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete model_;
  }
  static fs::path* dir_;
  static std::string* model_;
};
fs::path* ToolsTest::dir_ = nullptr;
std::string* ToolsTest::model_ = nullptr;

TEST_F(ToolsTest, InitWritesDiffusersLayoutAndInspectDescribesIt) {
  for (const char* f :
       {"model_index.json", "transformer/config.json",
        "transformer/diffusion_pytorch_model.safetensors", "text_encoder/config.json",
        "text_encoder/model.safetensors", "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors", "tokenizer/spiece.model"}) {
    EXPECT_TRUE(fs::exists(fs::path(*model_) / f)) << f;
  }
  // Diffusers names in the transformer file.
  auto dit = linvideo::core::io::ReadSafetensors(
      *model_ + "/transformer/diffusion_pytorch_model.safetensors");
  ASSERT_TRUE(dit.ok()) << dit.status();
  EXPECT_TRUE(dit->count("blocks.0.attn1.to_q.weight"));
  EXPECT_FALSE(dit->count("blocks.0.self_attn.q.weight"));

  Result r = RunCommand(kBin + "linvideo-model inspect " + *model_);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("layers 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("0:softmax 1:softmax"), std::string::npos) << r.output;
}

TEST_F(ToolsTest, SameSeedSameWeightsDifferentSeedDifferentWeights) {
  const std::string again = (*dir_ / "tiny_again").string();
  const std::string other = (*dir_ / "tiny_other").string();
  ASSERT_EQ(RunCommand(kBin + "linvideo-model init --config tiny --seed 7 " + again).code, 0);
  ASSERT_EQ(RunCommand(kBin + "linvideo-model init --config tiny --seed 8 " + other).code, 0);
  const std::string file = "/transformer/diffusion_pytorch_model.safetensors";
  auto a = linvideo::media::LoadBytes(*model_ + file);
  auto b = linvideo::media::LoadBytes(again + file);
  auto c = linvideo::media::LoadBytes(other + file);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
}

TEST_F(ToolsTest, ForwardRunsEveryComponentAndConvertKeepsResults) {
  torch::manual_seed(0);
  const std::string in = (*dir_ / "in.safetensors").string();
  ASSERT_TRUE(linvideo::core::io::WriteSafetensors(
                  in, {{"x", torch::randn({1, 16, 2, 4, 4})},
                       {"t", torch::tensor({500.f})},
                       {"context", torch::randn({1, 7, 64})},
                       {"ids", torch::randint(3, 200, {1, 9}, torch::kLong)},
                       {"mask", torch::ones({1, 9}, torch::kLong)},
                       {"z", torch::randn({1, 16, 2, 4, 4})}})
                  .ok());
  const std::string converted = (*dir_ / "tiny_original").string();
  Result conv = RunCommand(kBin + "linvideo-model convert --model " + *model_ +
                           " --to original --output " + converted);
  ASSERT_EQ(conv.code, 0) << conv.output;
  auto orig = linvideo::core::io::ReadSafetensors(
      converted + "/transformer/diffusion_pytorch_model.safetensors");
  ASSERT_TRUE(orig.ok());
  EXPECT_TRUE(orig->count("blocks.0.self_attn.q.weight"));

  for (auto [component, shape] :
       {std::pair<std::string, std::vector<int64_t>>{"dit", {1, 16, 2, 4, 4}},
        {"text-encoder", {1, 9, 64}},
        {"vae-decode", {1, 3, 5, 32, 32}}}) {
    const std::string out = (*dir_ / (component + ".safetensors")).string();
    const std::vector<torch::Tensor> outs = {Forward(*model_, component, in, out),
                                             Forward(converted, component, in, out)};
    ASSERT_TRUE(outs[0].defined() && outs[1].defined()) << component;
    EXPECT_EQ(outs[0].sizes().vec(), shape) << component;
    EXPECT_TRUE(torch::isfinite(outs[0]).all().item<bool>()) << component;
    EXPECT_TRUE(torch::equal(outs[0], outs[1])) << component << " differs after convert";
  }
  // A wrong input name is a clear error, not a crash.
  Result bad = RunCommand(kBin + "linvideo-model forward --model " + *model_ +
                          " --component vae-decode --inputs " + in + " --output " +
                          (*dir_ / "x.safetensors").string() + " --device tpu");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.output.find("allowed"), std::string::npos) << bad.output;
}

// The official release ships the VAE and umT5 as torch.save files (Wan2.1_VAE.pth,
// models_t5_umt5-xxl-enc-bf16.pth) with the official parameter names: written here by Debian's
// python3-torch from the tiny model (official names, in its vae/ and text_encoder/ folders, the
// only weights there), they load and run exactly as the safetensors they came from. The official
// root layout's detection of these file names is model_folder_test's; its default configs are the
// full-size umT5-XXL and VAE, which no tiny test can load.
TEST_F(ToolsTest, TorchSaveComponentFilesRunAsTheirSafetensors) {
  const std::string original = (*dir_ / "tiny_original_pth_src").string();
  Result conv = RunCommand(kBin + "linvideo-model convert --model " + *model_ +
                           " --to original --output " + original);
  ASSERT_EQ(conv.code, 0) << conv.output;
  const fs::path pth = *dir_ / "tiny_pth";
  fs::copy(original, pth, fs::copy_options::recursive);
  const std::string script = std::string("/usr/bin/python3 ") + LINVIDEO_SOURCE_DIR +
                             "/tests/data/torch_save/torch_save.py";
  for (auto [component, from, to] :
       {std::tuple<std::string, std::string, std::string>{
            "vae", "diffusion_pytorch_model.safetensors", "Wan2.1_VAE.pth"},
        {"text_encoder", "model.safetensors", "models_t5_umt5-xxl-enc-bf16.pth"}}) {
    const fs::path src = pth / component / from;
    Result r = RunCommand(script + " from-safetensors " + src.string() + " " +
                          (pth / component / to).string());
    ASSERT_EQ(r.code, 0) << r.output << " (needs Debian's python3-torch: scripts/install-deps.sh)";
    fs::remove(src);
  }
  const std::string in = (*dir_ / "pth_in.safetensors").string();
  torch::manual_seed(1);
  ASSERT_TRUE(linvideo::core::io::WriteSafetensors(
                  in, {{"ids", torch::randint(3, 200, {1, 9}, torch::kLong)},
                       {"mask", torch::ones({1, 9}, torch::kLong)},
                       {"z", torch::randn({1, 16, 2, 4, 4})}})
                  .ok());
  for (const std::string component : {"text-encoder", "vae-decode"}) {
    const std::string out = (*dir_ / ("pth_" + component + ".safetensors")).string();
    const std::vector<torch::Tensor> outs = {Forward(*model_, component, in, out),
                                             Forward(pth.string(), component, in, out)};
    ASSERT_TRUE(outs[0].defined() && outs[1].defined()) << component;
    EXPECT_TRUE(torch::equal(outs[0], outs[1])) << component << " differs when read from .pth";
  }
  // The whole pipeline: the same video, byte for byte.
  const std::string args =
      " --prompt 'a red circle' --frames 5 --height 32 --width 32 --steps 2 "
      "--seed 3 -o ";
  const std::string a = (*dir_ / "st.mp4").string(), b = (*dir_ / "pth.mp4").string();
  Result ra = RunCommand(kBin + "linvideo-generate --model " + *model_ + args + a);
  ASSERT_EQ(ra.code, 0) << ra.output;
  Result rb = RunCommand(kBin + "linvideo-generate --model " + pth.string() + args + b);
  ASSERT_EQ(rb.code, 0) << rb.output;
  auto bytes_a = linvideo::media::LoadBytes(a);
  auto bytes_b = linvideo::media::LoadBytes(b);
  ASSERT_TRUE(bytes_a.ok() && bytes_b.ok());
  EXPECT_EQ(*bytes_a, *bytes_b);
}

TEST_F(ToolsTest, GenerateWritesDecodableH264WithRequestedShapeReproducibly) {
  const std::string a = (*dir_ / "a.mp4").string(), b = (*dir_ / "b.mp4").string();
  const std::string args =
      " --prompt 'a red circle moves left' --frames 9 --height 32 "
      "--width 48 --steps 3 --seed 5 -o ";
  Result r = RunCommand(kBin + "linvideo-generate --model " + *model_ + args + a);
  ASSERT_EQ(r.code, 0) << r.output;
  ASSERT_EQ(RunCommand(kBin + "linvideo-generate --model " + *model_ + args + b).code, 0);
  auto bytes_a = linvideo::media::LoadBytes(a);
  auto bytes_b = linvideo::media::LoadBytes(b);
  ASSERT_TRUE(bytes_a.ok() && bytes_b.ok());
  EXPECT_EQ(*bytes_a, *bytes_b) << "same seed must give the same video";
  auto video = linvideo::media::DecodeVideo(*bytes_a);
  ASSERT_TRUE(video.ok()) << video.status();
  EXPECT_EQ(video->codec_name, "h264");
  EXPECT_EQ(video->frames.frames, 9);
  EXPECT_EQ(video->frames.width, 48);
  EXPECT_EQ(video->frames.height, 32);

  Result bad = RunCommand(kBin + "linvideo-generate --model " + *model_ +
                          " --prompt x --frames 8 -o " + (*dir_ / "c.mp4").string());
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.output.find("4k+1"), std::string::npos) << bad.output;
}

TEST_F(ToolsTest, ConvertAttentionMakesChosenLayersLinear) {
  const std::string out = (*dir_ / "tiny_linear").string();
  Result r = RunCommand(kBin + "linvideo-model convert-attention --model " + *model_ +
                        " --layers 1 --kind linear --output " + out);
  ASSERT_EQ(r.code, 0) << r.output;
  Result inspect = RunCommand(kBin + "linvideo-model inspect " + out);
  EXPECT_NE(inspect.output.find("0:softmax 1:linear"), std::string::npos) << inspect.output;
  Result gen =
      RunCommand(kBin + "linvideo-generate --model " + out +
                 " --prompt 'a blue square' --frames 5 --height 32 --width 32 --steps 2 -o " +
                 (*dir_ / "lin.mp4").string());
  EXPECT_EQ(gen.code, 0) << gen.output;
  Result bad = RunCommand(kBin + "linvideo-model convert-attention --model " + *model_ +
                          " --layers 9 --output " + (*dir_ / "bad").string());
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.output.find("[0, 2)"), std::string::npos) << bad.output;
}

// A linvideo-eval report with one seen and one held-out video per seed; `shape` is the seen
// videos' shape score (every other attribute 1), so overall seen adherence is (4 + shape) / 5.
nlohmann::json FakeReport(const std::string& model, double shape, int seeds) {
  nlohmann::json videos = nlohmann::json::array();
  auto adherence = [](double shape_score) {
    return nlohmann::json{{"background", 1.0}, {"color", 1.0}, {"shape", shape_score},
                          {"motion", 1.0},     {"size", 1.0},  {"mean", (4 + shape_score) / 5},
                          {"all", shape_score}};
  };
  for (int seed = 0; seed < seeds; ++seed) {
    for (bool held : {false, true}) {
      videos.push_back({{"case", held ? "h0" : "s0"},
                        {"seed", seed},
                        {"held_out", held},
                        {"adherence", adherence(held ? 1.0 : shape)},
                        {"consistency", {{"score", 0.8}}}});
    }
  }
  auto group = [&](double shape_score) {
    return nlohmann::json{{"adherence", adherence(shape_score)},
                          {"consistency", {{"score", 0.8}}},
                          {"fidelity", {{"psnr", 20.0}, {"ssim", 0.9}}},
                          {"seconds_per_video", 2.5}};
  };
  return {{"model", model},
          {"summary", {{"seen", group(shape)}, {"heldout", group(1.0)}, {"all", group(shape)}}},
          {"videos", videos}};
}

TEST_F(ToolsTest, EvalCompareAndTableGiveThePairedDifferences) {
  const fs::path base = *dir_ / "eval_base", cand = *dir_ / "eval_cand";
  fs::create_directories(base);
  fs::create_directories(cand);
  ASSERT_TRUE(linvideo::core::io::WriteJsonFile((base / "eval.json").string(),
                                                FakeReport("teacher", 1.0, 3))
                  .ok());
  ASSERT_TRUE(
      linvideo::core::io::WriteJsonFile((cand / "eval.json").string(), FakeReport(*model_, 0.0, 3))
          .ok());
  // Every seen pair loses the shape: -100 points of shape, -20 of overall adherence, exactly.
  Result cmp = RunCommand(kBin + "linvideo-eval compare --baseline " + base.string() +
                          " --candidate " + cand.string() + " --resamples 200");
  ASSERT_EQ(cmp.code, 0) << cmp.output;
  EXPECT_NE(cmp.output.find("| seen | 3 | +0.0 [+0.0, +0.0] | +0.0 [+0.0, +0.0] | -100.0 "
                            "[-100.0, -100.0] |"),
            std::string::npos)
      << cmp.output;
  const std::string table = (*dir_ / "table.md").string();
  Result t = RunCommand(kBin + "linvideo-eval table --baseline " + base.string() +
                        " --rows teacher=" + base.string() + ",converted=" + cand.string() +
                        " --resamples 200 --out " + table);
  ASSERT_EQ(t.code, 0) << t.output;
  EXPECT_NE(t.output.find("| teacher | 3 / 3 | 100.0 | — | 100.0 | — |"), std::string::npos)
      << t.output;
  EXPECT_NE(t.output.find("| converted | 3 / 3 | 80.0 | -20.0 [-20.0, -20.0] | 100.0 | +0.0 "
                          "[+0.0, +0.0] | 100 | 100 | 0 | 100 | 100 | 0 | 0.800 | 20.00 / 0.900 "
                          "| 2.50 | — |"),
            std::string::npos)
      << t.output;
  EXPECT_EQ(linvideo::media::LoadBytes(table).value_or(""), t.output);

  // The training column reads the row's model lineage: a converted model's conversion time, a
  // distilled one's conversion + distillation (it carries its base's conversion lineage).
  const fs::path converted = *dir_ / "lineage_converted", distilled = *dir_ / "lineage_distilled";
  fs::create_directories(converted);
  fs::create_directories(distilled);
  const nlohmann::json conversion = {{"method", "linvideo-selective-transfer"},
                                     {"train_seconds", 1620.0}};
  ASSERT_TRUE(linvideo::core::io::WriteJsonFile((converted / "model_index.json").string(),
                                                {{"linvideo_conversion", conversion}})
                  .ok());
  ASSERT_TRUE(linvideo::core::io::WriteJsonFile(
                  (distilled / "model_index.json").string(),
                  {{"linvideo_conversion", conversion},
                   {"linvideo_distillation", {{"method", "dmd2"}, {"train_seconds", 2760.0}}}})
                  .ok());
  for (const fs::path& model : {converted, distilled}) {
    fs::create_directories(*dir_ / ("eval_" + model.filename().string()));
    ASSERT_TRUE(linvideo::core::io::WriteJsonFile(
                    (*dir_ / ("eval_" + model.filename().string()) / "eval.json").string(),
                    FakeReport(model.string(), 0.0, 3))
                    .ok());
  }
  Result lineage = RunCommand(kBin + "linvideo-eval table --baseline " + base.string() +
                              " --rows c=" + (*dir_ / "eval_lineage_converted").string() + ",d=" +
                              (*dir_ / "eval_lineage_distilled").string() + " --resamples 50");
  ASSERT_EQ(lineage.code, 0) << lineage.output;
  EXPECT_NE(lineage.output.find("| 2.50 | 27 min |"), std::string::npos) << lineage.output;
  EXPECT_NE(lineage.output.find("| 2.50 | 27 + 46 min |"), std::string::npos) << lineage.output;

  Result bad =
      RunCommand(kBin + "linvideo-eval table --baseline " + base.string() + " --rows converted");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.output.find("is not NAME=DIR"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("a NAME cannot contain one"), std::string::npos) << bad.output;
}

}  // namespace

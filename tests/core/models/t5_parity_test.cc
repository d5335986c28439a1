// Parity with the official Wan 2.1 T5Encoder (wan/modules/t5.py). The reference outputs come from a
// dev-time harness that runs the official Python module on random weights and writes, per case, a
// safetensors file: weights "w.<official name>", "ids", "mask", "out" (fp32 official), "out64"
// (official run in fp64), metadata "config" (Wan-style JSON). Point LINVIDEO_T5_PARITY_DIR at the
// folder of such files; without it the test is skipped (no Python/PyTorch needed to build or test).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "core/io/safetensors.h"
#include "core/io/state_dict.h"
#include "core/models/wan/t5_encoder.h"
#include "core/models/wan/t5_key_map.h"

namespace linvideo::core::wan {
namespace {

double MaxRelErr(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

TEST(T5ParityTest, MatchesOfficialEncoder) {
  const char* dir = std::getenv("LINVIDEO_T5_PARITY_DIR");
  if (dir == nullptr) GTEST_SKIP() << "LINVIDEO_T5_PARITY_DIR not set";
  int cases = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".safetensors") continue;
    SCOPED_TRACE(entry.path().string());
    auto reader = io::SafetensorsReader::Open(entry.path().string());
    ASSERT_TRUE(reader.ok()) << reader.status();
    auto config = T5Config::FromJson(nlohmann::json::parse((*reader)->metadata().at("config")));
    ASSERT_TRUE(config.ok()) << config.status();
    auto all = (*reader)->ReadAll();
    ASSERT_TRUE(all.ok()) << all.status();
    io::TensorMap weights;
    for (const auto& [name, t] : *all) {
      if (name.rfind("w.", 0) == 0) weights[name.substr(2)] = t;
    }
    const torch::Tensor ids = all->at("ids"), mask = all->at("mask");
    const torch::Tensor want = all->at("out"), want64 = all->at("out64");

    auto enc = CreateT5Encoder(*config);
    ASSERT_TRUE(enc.ok()) << enc.status();
    ASSERT_TRUE(LoadT5Weights(**enc, weights).ok());
    torch::NoGradGuard no_grad;
    torch::Tensor got = (*enc)->forward(ids, mask);
    const double err = MaxRelErr(got, want), err64 = MaxRelErr(got, want64);
    std::cout << entry.path().filename().string() << ": max rel err vs official fp32 " << err
              << ", vs official fp64 " << err64 << "\n";
    EXPECT_LE(err, 1e-4);
    EXPECT_LE(err64, 1e-4);

    // Same weights through Hugging Face names.
    auto hf = WanToHfT5(weights);
    ASSERT_TRUE(hf.ok());
    auto enc2 = CreateT5Encoder(*config);
    ASSERT_TRUE(LoadT5Weights(**enc2, *hf).ok());
    EXPECT_TRUE(torch::equal((*enc2)->forward(ids, mask), got));

    // bf16 weights: report the error (loose bound; the official bf16 path also rounds activations).
    DeviceOptions bf16;
    bf16.dtype = torch::kBFloat16;
    auto enc3 = CreateT5Encoder(*config, bf16);
    ASSERT_TRUE(LoadT5Weights(**enc3, weights).ok());
    const double err_bf16 = MaxRelErr((*enc3)->forward(ids, mask), want64);
    std::cout << "  bf16 weights: max rel err vs official fp64 " << err_bf16 << "\n";
    EXPECT_LE(err_bf16, 5e-2);
    ++cases;
  }
  EXPECT_GT(cases, 0) << "no .safetensors cases in " << dir;
}

}  // namespace
}  // namespace linvideo::core::wan

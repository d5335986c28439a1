// Parity of WanModel against reference outputs produced by another implementation (e.g. the
// official Wan 2.1 PyTorch code run by a dev-time harness outside this repository).
//
// Set LINVIDEO_DIT_PARITY_DIRS to one or more folders (':'-separated), each holding
//   config.json (either layout), weights.safetensors (original or diffusers names),
//   inputs.safetensors (x, t, context), reference.safetensors (out).
// The test writes linvideo_out.safetensors next to them and requires a relative L2 error <= 1e-4.
// Without the variable the test is skipped.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>

#include "absl/strings/str_split.h"
#include "core/common/runtime.h"
#include "core/io/json_file.h"
#include "core/io/safetensors.h"
#include "core/io/state_dict.h"
#include "core/models/wan/dit.h"
#include "core/models/wan/dit_key_map.h"

namespace linvideo::core::wan {
namespace {

TEST(DitParityTest, MatchesReferenceOutputs) {
  const char* dirs = std::getenv("LINVIDEO_DIT_PARITY_DIRS");
  if (dirs == nullptr || *dirs == '\0') GTEST_SKIP() << "LINVIDEO_DIT_PARITY_DIRS not set";
  InitRuntime();
  for (const std::string& dir :
       std::vector<std::string>(absl::StrSplit(dirs, ':', absl::SkipEmpty()))) {
    SCOPED_TRACE(dir);
    auto json = io::ReadJsonFile(dir + "/config.json");
    ASSERT_TRUE(json.ok()) << json.status();
    auto config = WanConfig::FromJson(*json);
    ASSERT_TRUE(config.ok()) << config.status();
    auto model = CreateWanModel(*config);
    ASSERT_TRUE(model.ok()) << model.status();
    auto weights = io::ReadSafetensors(dir + "/weights.safetensors", torch::kFloat);
    ASSERT_TRUE(weights.ok()) << weights.status();
    auto named = DitToOriginalNames(*weights);
    ASSERT_TRUE(named.ok()) << named.status();
    ASSERT_TRUE(io::LoadStateDict(**model, *named).ok());
    auto inputs = io::ReadSafetensors(dir + "/inputs.safetensors", torch::kFloat);
    ASSERT_TRUE(inputs.ok()) << inputs.status();
    auto reference = io::ReadSafetensors(dir + "/reference.safetensors", torch::kFloat);
    ASSERT_TRUE(reference.ok()) << reference.status();

    torch::InferenceMode guard;
    auto out = (*model)->forward(inputs->at("x"), inputs->at("t"), inputs->at("context"));
    ASSERT_TRUE(io::WriteSafetensors(dir + "/linvideo_out.safetensors", {{"out", out}}).ok());
    const auto& ref = reference->at("out");
    ASSERT_EQ(out.sizes(), ref.sizes());
    const double rel = ((out - ref).norm() / ref.norm()).item<double>();
    const double max_rel = ((out - ref).abs().max() / ref.abs().max()).item<double>();
    std::cout << dir << ": relative L2 error " << rel << ", max abs error / max |ref| " << max_rel
              << "\n";
    EXPECT_LE(rel, 1e-4);
  }
}

}  // namespace
}  // namespace linvideo::core::wan

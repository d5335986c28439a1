// `linvideo-model init` and `inspect`.

#include <torch/types.h>
#include <torch/utils.h>

#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/runtime.h"
#include "core/common/status.h"
#include "core/io/json_file.h"
#include "core/io/state_dict.h"
#include "core/pipeline/model_folder.h"
#include "tools/flags.h"
#include "tools/model_commands.h"

namespace linvideo::tools {
namespace {

namespace fs = std::filesystem;

// Where the default tokenizer lives: next to the binary's source tree, or installed.
std::string DefaultTokenizerModel() {
  for (const std::string& p : {std::string(LINVIDEO_SOURCE_DIR) + "/models/tokenizer/spiece.model",
                               std::string("/usr/share/linvideo/tokenizer/spiece.model")}) {
    if (fs::exists(p)) return p;
  }
  return std::string(LINVIDEO_SOURCE_DIR) + "/models/tokenizer/spiece.model";
}

}  // namespace

absl::Status RunInit(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(Flags flags, Flags::Parse(args, {"config", "seed", "dtype", "tokenizer"},
                                                {"small-companions"}));
  if (flags.positional().size() != 1) {
    return absl::InvalidArgumentError(
        "usage: linvideo-model init --config NAME --seed S [--dtype fp32|bf16] DIR");
  }
  LV_ASSIGN_OR_RETURN(std::string name, flags.Required("config"));
  LV_ASSIGN_OR_RETURN(int64_t seed, flags.GetInt("seed", 0));
  LV_ASSIGN_OR_RETURN(c10::ScalarType dtype, core::ParseDtype(flags.Get("dtype", "fp32")));
  core::InitRuntime();

  core::pipeline::RandomModelOptions options;
  options.config = name;
  options.seed = static_cast<uint64_t>(seed);
  options.dtype = dtype;
  options.small_companions =
      flags.Has("small-companions") && flags.Get("small-companions") != "false";
  options.tokenizer_model_file = flags.Get("tokenizer", DefaultTokenizerModel());
  const std::string dir = flags.positional()[0];
  LV_ASSIGN_OR_RETURN(std::string summary, core::pipeline::WriteRandomModelFolder(dir, options));
  std::cout << "wrote " << name << " model (seed " << seed << ", " << core::DtypeName(dtype)
            << ") to " << dir << ": " << summary << "\n";
  return absl::OkStatus();
}

absl::Status RunInspect(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(Flags flags, Flags::Parse(args, {}));
  if (flags.positional().size() != 1) {
    return absl::InvalidArgumentError("usage: linvideo-model inspect DIR");
  }
  using core::pipeline::ComponentPath;
  LV_ASSIGN_OR_RETURN(auto folder, core::pipeline::ResolveModelFolder(flags.positional()[0]));
  std::cout << "model folder: " << folder.root << " ("
            << (folder.diffusers ? "diffusers layout" : "Wan / single component") << ")\n";
  auto weights_summary = [](const ComponentPath& p) -> std::string {
    auto tensors = core::io::ReadWeights(p.dir, p.weights_stem);
    if (!tensors.ok()) return absl::StrCat("weights: ", tensors.status().message());
    std::map<std::string, int64_t> by_dtype;
    int64_t total = 0;
    for (const auto& [k, v] : *tensors) {
      by_dtype[core::DtypeName(v.scalar_type())] += v.numel();
      total += v.numel();
    }
    std::vector<std::string> parts;
    for (const auto& [d, n] : by_dtype) parts.push_back(absl::StrCat(d, " ", n));
    return absl::StrCat(tensors->size(), " tensors, ", total, " parameters (",
                        absl::StrJoin(parts, ", "), ")");
  };
  if (folder.transformer) {
    LV_ASSIGN_OR_RETURN(auto config, core::pipeline::ReadDitConfig(*folder.transformer));
    std::cout << "transformer: " << folder.transformer->dir << "\n  dim " << config.dim
              << ", ffn_dim " << config.ffn_dim << ", heads " << config.num_heads << ", layers "
              << config.num_layers << ", text_dim " << config.text_dim << ", text_len "
              << config.text_len << ", freq_dim " << config.freq_dim << "\n  "
              << weights_summary(*folder.transformer) << "\n  attention per layer:";
    for (size_t i = 0; i < config.attention_kinds.size(); ++i) {
      std::cout << (i % 10 == 0 ? "\n    " : " ") << i << ":"
                << core::attention::AttentionKindName(config.attention_kinds[i]);
    }
    std::cout << "\n";
  }
  if (folder.text_encoder) {
    LV_ASSIGN_OR_RETURN(auto config, core::pipeline::ReadT5Config(*folder.text_encoder));
    std::cout << "text_encoder: " << folder.text_encoder->dir << "\n  umT5 d_model " << config.dim
              << ", heads " << config.num_heads << ", layers " << config.num_layers << ", d_ff "
              << config.dim_ffn << ", vocab " << config.vocab << "\n  "
              << weights_summary(*folder.text_encoder) << "\n";
  }
  if (folder.tokenizer) std::cout << "tokenizer: " << folder.tokenizer->dir << "\n";
  if (folder.vae) {
    LV_ASSIGN_OR_RETURN(auto config, core::pipeline::ReadVaeConfig(*folder.vae));
    std::cout << "vae: " << folder.vae->dir << "\n  base_dim " << config.base_dim << ", z_dim "
              << config.z_dim << "\n  " << weights_summary(*folder.vae) << "\n";
  }
  return absl::OkStatus();
}

}  // namespace linvideo::tools

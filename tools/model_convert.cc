// `linvideo-model convert` (original <-> diffusers key names) and `convert-attention` (turn chosen
// self-attention layers linear or hybrid, starting from identity-initialised feature maps).

#include <torch/types.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/common/status.h"
#include "core/io/json_file.h"
#include "core/io/state_dict.h"
#include "core/models/wan/dit_key_map.h"
#include "core/models/wan/t5_key_map.h"
#include "core/models/wan/vae_key_map.h"
#include "core/pipeline/model_folder.h"
#include "tools/flags.h"
#include "tools/model_commands.h"

namespace linvideo::tools {
namespace {

namespace fs = std::filesystem;
using core::io::TensorMap;

using core::pipeline::CopyModelFolder;
using core::pipeline::RewriteOf;
using Rewrite = core::pipeline::WeightsRewrite;

// Writes a component's converted weights into the copied folder `out`.
absl::Status WriteRewrite(const fs::path& out, const Rewrite& r, const TensorMap& tensors) {
  return core::io::WriteWeights((out / r.dir).string(), r.OutputStem(), tensors);
}

}  // namespace

absl::Status RunConvert(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(Flags flags, Flags::Parse(args, {"model", "to", "output"}));
  LV_ASSIGN_OR_RETURN(std::string model, flags.Required("model"));
  LV_ASSIGN_OR_RETURN(std::string to, flags.Required("to"));
  LV_ASSIGN_OR_RETURN(std::string output, flags.Required("output"));
  if (to != "diffusers" && to != "original") {
    return absl::InvalidArgumentError(
        absl::StrCat("--to '", to, "' is not allowed; use diffusers or original"));
  }
  const bool diffusers = to == "diffusers";
  if (fs::exists(output)) {
    return absl::AlreadyExistsError(absl::StrCat("--output ", output, " already exists"));
  }
  LV_ASSIGN_OR_RETURN(auto folder, core::pipeline::ResolveModelFolder(model));
  std::vector<Rewrite> rewrites;
  if (folder.transformer) {
    rewrites.push_back(RewriteOf(*folder.transformer, folder.root, "diffusion_pytorch_model"));
  }
  if (folder.text_encoder)
    rewrites.push_back(RewriteOf(*folder.text_encoder, folder.root, "model"));
  if (folder.vae)
    rewrites.push_back(RewriteOf(*folder.vae, folder.root, "diffusion_pytorch_model"));
  LV_RETURN_IF_ERROR(CopyModelFolder(folder.root, output, rewrites));
  int converted = 0;
  if (folder.transformer) {
    LV_ASSIGN_OR_RETURN(TensorMap t, core::io::ReadWeights(folder.transformer->dir,
                                                           folder.transformer->weights_stem));
    LV_ASSIGN_OR_RETURN(TensorMap orig, core::wan::DitToOriginalNames(t));
    if (diffusers) {
      LV_ASSIGN_OR_RETURN(orig, core::wan::DitToDiffusersNames(orig));
    }
    LV_RETURN_IF_ERROR(WriteRewrite(
        output, RewriteOf(*folder.transformer, folder.root, "diffusion_pytorch_model"), orig));
    ++converted;
  }
  if (folder.text_encoder) {
    LV_ASSIGN_OR_RETURN(auto config, core::pipeline::ReadT5Config(*folder.text_encoder));
    LV_ASSIGN_OR_RETURN(TensorMap t, core::io::ReadWeights(folder.text_encoder->dir,
                                                           folder.text_encoder->weights_stem));
    LV_ASSIGN_OR_RETURN(TensorMap wan, core::wan::ToWanT5(t, config.shared_pos));
    if (diffusers) {
      LV_ASSIGN_OR_RETURN(wan, core::wan::WanToHfT5(wan, config.shared_pos));
    }
    LV_RETURN_IF_ERROR(
        WriteRewrite(output, RewriteOf(*folder.text_encoder, folder.root, "model"), wan));
    ++converted;
  }
  if (folder.vae) {
    LV_ASSIGN_OR_RETURN(auto config, core::pipeline::ReadVaeConfig(*folder.vae));
    LV_ASSIGN_OR_RETURN(TensorMap t,
                        core::io::ReadWeights(folder.vae->dir, folder.vae->weights_stem));
    LV_ASSIGN_OR_RETURN(TensorMap official, core::wan::ToOfficialVaeStateDict(t, config));
    if (diffusers) {
      LV_ASSIGN_OR_RETURN(official, core::wan::ToDiffusersVaeStateDict(official, config));
    }
    LV_RETURN_IF_ERROR(WriteRewrite(
        output, RewriteOf(*folder.vae, folder.root, "diffusion_pytorch_model"), official));
    ++converted;
  }
  std::cout << "converted " << converted << " component(s) to " << to << " names in " << output
            << "\n";
  return absl::OkStatus();
}

absl::Status RunConvertAttention(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(Flags flags, Flags::Parse(args, {"model", "layers", "kind", "output"}));
  LV_ASSIGN_OR_RETURN(std::string model, flags.Required("model"));
  LV_ASSIGN_OR_RETURN(std::string layers_text, flags.Required("layers"));
  LV_ASSIGN_OR_RETURN(std::string output, flags.Required("output"));
  LV_ASSIGN_OR_RETURN(auto kind, core::attention::ParseAttentionKind(flags.Get("kind", "linear")));
  if (fs::exists(output)) {
    return absl::AlreadyExistsError(absl::StrCat("--output ", output, " already exists"));
  }
  LV_ASSIGN_OR_RETURN(auto folder, core::pipeline::ResolveModelFolder(model));
  if (!folder.transformer) {
    return absl::NotFoundError(absl::StrCat("'", model, "' has no transformer component"));
  }
  LV_ASSIGN_OR_RETURN(auto config, core::pipeline::ReadDitConfig(*folder.transformer));
  std::set<int64_t> layers;
  for (absl::string_view part : absl::StrSplit(layers_text, ',', absl::SkipEmpty())) {
    int64_t l = -1;
    if (!absl::SimpleAtoi(part, &l) || l < 0 || l >= config.num_layers) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--layers entry '", part, "' is not a layer index in [0, ", config.num_layers, ")"));
    }
    layers.insert(l);
  }
  for (int64_t l : layers) config.attention_kinds[l] = kind;

  // New model with the requested kinds: the converted layers' feature maps start from their
  // constructors' (identity) initialisation; every other tensor comes from the checkpoint.
  LV_ASSIGN_OR_RETURN(auto dit, core::wan::CreateWanModel(config));
  LV_ASSIGN_OR_RETURN(TensorMap t, core::io::ReadWeights(folder.transformer->dir,
                                                         folder.transformer->weights_stem));
  LV_ASSIGN_OR_RETURN(TensorMap orig, core::wan::DitToOriginalNames(t));
  // Attention-core tensors of layers whose kind changed are dropped (a linear layer turned back to
  // softmax has none; a hybrid one re-initialises).
  TensorMap kept;
  for (auto& [name, tensor] : orig) {
    const bool core_param = name.find(".self_attn.attn_core.") != std::string::npos;
    if (!core_param || !layers.count(core::wan::DitBlockIndex(name))) kept[name] = tensor;
  }
  core::io::LoadOptions options;
  options.ignore_missing = [&](const std::string& name) {
    return name.find(".self_attn.attn_core.") != std::string::npos;
  };
  LV_RETURN_IF_ERROR(core::io::LoadStateDict(*dit, kept, options));
  const Rewrite rewrite = RewriteOf(*folder.transformer, folder.root, "diffusion_pytorch_model");
  LV_RETURN_IF_ERROR(CopyModelFolder(folder.root, output, {rewrite}));
  const fs::path out_transformer = fs::path(output) / rewrite.dir;
  LV_ASSIGN_OR_RETURN(TensorMap converted,
                      core::wan::DitToDiffusersNames(core::io::StateDict(*dit)));
  LV_RETURN_IF_ERROR(WriteRewrite(output, rewrite, converted));
  LV_RETURN_IF_ERROR(
      core::io::WriteJsonFile((out_transformer / "config.json").string(),
                              config.ToJson(core::wan::DitConfigFormat::kDiffusers)));
  std::cout << "converted " << layers.size() << " layer(s) to "
            << core::attention::AttentionKindName(kind) << " attention in " << output << "\n";
  return absl::OkStatus();
}

}  // namespace linvideo::tools

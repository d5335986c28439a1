// `linvideo-model convert` (original <-> diffusers key names) and `convert-attention` (turn chosen
// self-attention layers linear or hybrid, starting from identity-initialised feature maps).

#include <torch/types.h>

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

absl::Status CopyTree(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::create_directories(to, ec);
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("copying ", from.string(), " to ", to.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

// Replaces the weights of the component in `dir` (removing old shards) with `tensors`.
absl::Status ReplaceWeights(const fs::path& dir, const std::string& stem,
                            const TensorMap& tensors) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.find(".safetensors") != std::string::npos) fs::remove(entry.path());
  }
  return core::io::WriteWeights(dir.string(), stem, tensors);
}

// N of a "blocks.N...." parameter name, else -1.
int64_t BlockIndex(const std::string& name) {
  const std::string kPrefix = "blocks.";
  if (name.rfind(kPrefix, 0) != 0) return -1;
  const size_t end = name.find('.', kPrefix.size());
  int64_t index = -1;
  if (!absl::SimpleAtoi(name.substr(kPrefix.size(), end - kPrefix.size()), &index)) return -1;
  return index;
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
  LV_RETURN_IF_ERROR(CopyTree(folder.root, output));
  auto out_dir = [&](const core::pipeline::ComponentPath& c) {
    return fs::path(output) / fs::relative(c.dir, folder.root);
  };
  int converted = 0;
  if (folder.transformer) {
    LV_ASSIGN_OR_RETURN(TensorMap t, core::io::ReadWeights(folder.transformer->dir,
                                                           folder.transformer->weights_stem));
    LV_ASSIGN_OR_RETURN(TensorMap orig, core::wan::DitToOriginalNames(t));
    if (diffusers) {
      LV_ASSIGN_OR_RETURN(orig, core::wan::DitToDiffusersNames(orig));
    }
    LV_RETURN_IF_ERROR(
        ReplaceWeights(out_dir(*folder.transformer), "diffusion_pytorch_model", orig));
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
    LV_RETURN_IF_ERROR(ReplaceWeights(out_dir(*folder.text_encoder), "model", wan));
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
    LV_RETURN_IF_ERROR(ReplaceWeights(out_dir(*folder.vae), "diffusion_pytorch_model", official));
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
    if (!core_param || !layers.count(BlockIndex(name))) kept[name] = tensor;
  }
  core::io::LoadOptions options;
  options.ignore_missing = [&](const std::string& name) {
    return name.find(".self_attn.attn_core.") != std::string::npos;
  };
  LV_RETURN_IF_ERROR(core::io::LoadStateDict(*dit, kept, options));
  LV_RETURN_IF_ERROR(CopyTree(folder.root, output));
  const fs::path out_transformer =
      fs::path(output) / fs::relative(folder.transformer->dir, folder.root);
  LV_ASSIGN_OR_RETURN(TensorMap converted,
                      core::wan::DitToDiffusersNames(core::io::StateDict(*dit)));
  LV_RETURN_IF_ERROR(ReplaceWeights(out_transformer, "diffusion_pytorch_model", converted));
  LV_RETURN_IF_ERROR(
      core::io::WriteJsonFile((out_transformer / "config.json").string(),
                              config.ToJson(core::wan::DitConfigFormat::kDiffusers)));
  std::cout << "converted " << layers.size() << " layer(s) to "
            << core::attention::AttentionKindName(kind) << " attention in " << output << "\n";
  return absl::OkStatus();
}

}  // namespace linvideo::tools

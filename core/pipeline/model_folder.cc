#include "core/pipeline/model_folder.h"

#include <torch/types.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "core/common/status.h"
#include "core/io/json_file.h"
#include "core/io/state_dict.h"
#include "core/io/torch_checkpoint.h"
#include "core/models/wan/dit_key_map.h"
#include "core/models/wan/t5_key_map.h"
#include "core/models/wan/vae_key_map.h"

namespace linvideo::core::pipeline {
namespace fs = std::filesystem;

namespace {

bool IsFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}
bool IsDir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// Which component a lone config.json describes (by its class name or characteristic fields).
std::optional<ComponentKind> GuessComponent(const nlohmann::json& config) {
  const std::string cls = config.value("_class_name", "");
  if (cls == "WanTransformer3DModel" || config.contains("num_attention_heads") ||
      (config.contains("dim") && config.contains("num_heads") && config.contains("ffn_dim"))) {
    return ComponentKind::kTransformer;
  }
  if (cls == "AutoencoderKLWan" || config.contains("z_dim") || config.contains("base_dim")) {
    return ComponentKind::kVae;
  }
  if (config.contains("d_model") || config.contains("dim_attn") ||
      config.value("model_type", "") == "umt5" || config.value("model_type", "") == "t5") {
    return ComponentKind::kTextEncoder;
  }
  return std::nullopt;
}

std::optional<ComponentPath> Component(const fs::path& dir, bool need_config) {
  if (!IsDir(dir)) return std::nullopt;
  ComponentPath p{dir.string(), (dir / "config.json").string(), ""};
  if (!IsFile(p.config_file)) {
    if (need_config) return std::nullopt;
    p.config_file.clear();
  }
  return p;
}

absl::StatusOr<nlohmann::json> ReadConfig(const ComponentPath& path, const char* what) {
  if (path.config_file.empty()) {
    return absl::NotFoundError(absl::StrCat(what, ": no config.json in ", path.dir));
  }
  return io::ReadJsonFile(path.config_file);
}

// In the file's own dtype: LoadStateDict converts each tensor into its parameter's dtype, so a bf16
// release file (umT5-XXL: 11 GB) is never held as an fp32 copy (22 GB) on the way, and safetensors
// stay zero-copy views of the mapping. The values are the same either way (bf16 -> fp32 is exact).
absl::StatusOr<io::TensorMap> ReadComponentWeights(const ComponentPath& path) {
  return io::ReadWeights(path.dir, path.weights_stem);
}

}  // namespace

const char* ComponentKindName(ComponentKind kind) {
  switch (kind) {
    case ComponentKind::kTransformer:
      return "transformer";
    case ComponentKind::kTextEncoder:
      return "text_encoder";
    case ComponentKind::kVae:
      return "vae";
    case ComponentKind::kTokenizer:
      return "tokenizer";
  }
  return "unknown";
}

absl::StatusOr<ModelFolder> ResolveModelFolder(const std::string& path) {
  const fs::path root(path);
  if (!IsDir(root)) {
    return absl::NotFoundError(absl::StrCat("model folder '", path, "' does not exist"));
  }
  ModelFolder folder;
  folder.root = root.string();
  if (IsFile(root / "model_index.json")) {
    folder.diffusers = true;
    folder.transformer = Component(root / "transformer", true);
    folder.text_encoder = Component(root / "text_encoder", true);
    folder.vae = Component(root / "vae", true);
    folder.tokenizer = Component(root / "tokenizer", false);
    return folder;
  }
  if (IsFile(root / "config.json")) {
    LV_ASSIGN_OR_RETURN(auto config, io::ReadJsonFile((root / "config.json").string()));
    auto kind = GuessComponent(config);
    if (!kind) {
      return absl::InvalidArgumentError(absl::StrCat(
          (root / "config.json").string(),
          " describes no known component; expected a WanModel / WanTransformer3DModel, "
          "AutoencoderKLWan or umT5 config"));
    }
    ComponentPath self{root.string(), (root / "config.json").string(), ""};
    switch (*kind) {
      case ComponentKind::kVae:
        folder.vae = self;
        return folder;
      case ComponentKind::kTextEncoder:
        folder.text_encoder = self;
        if (IsFile(root / "spiece.model") || IsFile(root / "tokenizer.model")) {
          folder.tokenizer = ComponentPath{root.string(), "", ""};
        }
        return folder;
      default:
        break;
    }
    // Official Wan-AI layout: the DiT at the root, the other components beside it.
    folder.transformer = ComponentPath{root.string(), self.config_file, "diffusion_pytorch_model"};
    if (!IsFile(root / "diffusion_pytorch_model.safetensors") &&
        !IsFile(root / "diffusion_pytorch_model.safetensors.index.json")) {
      folder.transformer->weights_stem.clear();
    }
    // The release's .pth files as downloaded, or safetensors made from them.
    auto has_weights = [&](const std::string& stem) {
      if (IsFile(root / (stem + ".safetensors"))) return true;
      for (const char* suffix : io::kTorchCheckpointSuffixes) {
        if (IsFile(root / (stem + suffix))) return true;
      }
      return false;
    };
    if (has_weights("Wan2.1_VAE")) folder.vae = ComponentPath{root.string(), "", "Wan2.1_VAE"};
    if (has_weights("models_t5_umt5-xxl-enc-bf16")) {
      folder.text_encoder = ComponentPath{root.string(), "", "models_t5_umt5-xxl-enc-bf16"};
    }
    if (IsDir(root / "google" / "umt5-xxl")) {
      folder.tokenizer = ComponentPath{(root / "google" / "umt5-xxl").string(), "", ""};
    }
    return folder;
  }
  return absl::NotFoundError(absl::StrCat(
      "'", path,
      "' is not a model folder: expected model_index.json (diffusers layout), or config.json "
      "(official Wan DiT folder or a single transformer/, vae/, text_encoder/ folder)"));
}

absl::StatusOr<wan::WanConfig> ReadDitConfig(const ComponentPath& path) {
  LV_ASSIGN_OR_RETURN(auto json, ReadConfig(path, "transformer"));
  auto config = wan::WanConfig::FromJson(json);
  if (!config.ok()) return Annotate(config.status(), path.config_file);
  return config;
}

absl::StatusOr<wan::T5Config> ReadT5Config(const ComponentPath& path) {
  if (path.config_file.empty()) return wan::T5Config::Named("umt5-xxl");
  LV_ASSIGN_OR_RETURN(auto json, io::ReadJsonFile(path.config_file));
  auto config = wan::T5Config::FromJson(json);
  if (!config.ok()) return Annotate(config.status(), path.config_file);
  return config;
}

absl::StatusOr<wan::VaeConfig> ReadVaeConfig(const ComponentPath& path) {
  if (path.config_file.empty()) return wan::VaeConfig::Named("wan2.1");
  LV_ASSIGN_OR_RETURN(auto json, io::ReadJsonFile(path.config_file));
  auto config = wan::VaeConfig::FromJson(json);
  if (!config.ok()) return Annotate(config.status(), path.config_file);
  return config;
}

absl::StatusOr<wan::WanModel> LoadDit(const ComponentPath& path, const DeviceOptions& device) {
  LV_ASSIGN_OR_RETURN(wan::WanConfig config, ReadDitConfig(path));
  LV_ASSIGN_OR_RETURN(wan::WanModel model, wan::CreateWanModel(config));
  LV_ASSIGN_OR_RETURN(io::TensorMap tensors, ReadComponentWeights(path));
  LV_ASSIGN_OR_RETURN(io::TensorMap original, wan::DitToOriginalNames(tensors));
  tensors.clear();
  LV_RETURN_IF_ERROR(Annotate(io::LoadStateDict(*model, original),
                              absl::StrCat("transformer weights in ", path.dir)));
  original.clear();
  LV_RETURN_IF_ERROR(model->ToRuntime(device));
  model->eval();
  return model;
}

absl::StatusOr<wan::T5Encoder> LoadTextEncoder(const ComponentPath& path,
                                               const DeviceOptions& device) {
  LV_ASSIGN_OR_RETURN(wan::T5Config config, ReadT5Config(path));
  LV_ASSIGN_OR_RETURN(wan::T5Encoder encoder, wan::CreateT5Encoder(config, device));
  LV_ASSIGN_OR_RETURN(io::TensorMap tensors, ReadComponentWeights(path));
  LV_ASSIGN_OR_RETURN(io::TensorMap wan_names, wan::ToWanT5(tensors, config.shared_pos));
  tensors.clear();
  LV_RETURN_IF_ERROR(Annotate(io::LoadStateDict(*encoder, wan_names),
                              absl::StrCat("text encoder weights in ", path.dir)));
  return encoder;
}

absl::StatusOr<wan::WanVae> LoadVae(const ComponentPath& path, const DeviceOptions& device) {
  LV_ASSIGN_OR_RETURN(wan::VaeConfig config, ReadVaeConfig(path));
  LV_ASSIGN_OR_RETURN(wan::WanVae vae, wan::CreateWanVae(config));
  LV_ASSIGN_OR_RETURN(io::TensorMap tensors, ReadComponentWeights(path));
  LV_RETURN_IF_ERROR(
      Annotate(wan::LoadWanVaeWeights(vae, tensors), absl::StrCat("VAE in ", path.dir)));
  LV_RETURN_IF_ERROR(TorchCall("VAE to device", [&] {
    vae->to(device.device);
    vae->eval();
  }));
  return vae;
}

absl::StatusOr<std::unique_ptr<wan::T5Tokenizer>> LoadTokenizer(const ComponentPath& path) {
  for (const char* name : {"spiece.model", "tokenizer.model"}) {
    const fs::path file = fs::path(path.dir) / name;
    if (IsFile(file)) return wan::T5Tokenizer::Create(file.string());
  }
  return absl::NotFoundError(
      absl::StrCat("no sentencepiece model (spiece.model or tokenizer.model) in ", path.dir));
}

absl::Status WriteModelFolder(const std::string& dir, const ModelFolderContents& c) {
  std::error_code ec;
  const fs::path root(dir);
  for (const char* sub : {"transformer", "text_encoder", "vae", "tokenizer"}) {
    fs::create_directories(root / sub, ec);
    if (ec) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create ", (root / sub).string(), ": ", ec.message()));
    }
  }
  nlohmann::json dit_json = c.dit_config.ToJson(wan::DitConfigFormat::kDiffusers);
  LV_RETURN_IF_ERROR(io::WriteJsonFile((root / "transformer" / "config.json").string(), dit_json));
  LV_ASSIGN_OR_RETURN(io::TensorMap dit, wan::DitToDiffusersNames(c.dit));
  LV_RETURN_IF_ERROR(
      io::WriteWeights((root / "transformer").string(), "diffusion_pytorch_model", dit));

  LV_RETURN_IF_ERROR(
      io::WriteJsonFile((root / "text_encoder" / "config.json").string(), c.t5_config.ToJson()));
  LV_ASSIGN_OR_RETURN(io::TensorMap t5, wan::WanToHfT5(c.text_encoder, c.t5_config.shared_pos));
  LV_RETURN_IF_ERROR(io::WriteWeights((root / "text_encoder").string(), "model", t5));

  LV_RETURN_IF_ERROR(
      io::WriteJsonFile((root / "vae" / "config.json").string(), c.vae_config.ToJson()));
  LV_ASSIGN_OR_RETURN(io::TensorMap vae, wan::ToDiffusersVaeStateDict(c.vae, c.vae_config));
  LV_RETURN_IF_ERROR(io::WriteWeights((root / "vae").string(), "diffusion_pytorch_model", vae));

  std::ifstream in(c.tokenizer_model_file, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("tokenizer model '", c.tokenizer_model_file, "' cannot be read"));
  }
  std::stringstream bytes;
  bytes << in.rdbuf();
  LV_RETURN_IF_ERROR(
      io::WriteFileAtomic((root / "tokenizer" / "spiece.model").string(), bytes.str()));

  nlohmann::json index = {{"_class_name", "WanPipeline"},
                          {"_diffusers_version", "0.33.0"},
                          {"transformer", {"diffusers", "WanTransformer3DModel"}},
                          {"text_encoder", {"transformers", "UMT5EncoderModel"}},
                          {"tokenizer", {"transformers", "T5TokenizerFast"}},
                          {"vae", {"diffusers", "AutoencoderKLWan"}},
                          {"scheduler", {"diffusers", "UniPCMultistepScheduler"}}};
  return io::WriteJsonFile((root / "model_index.json").string(), index);
}

absl::StatusOr<std::string> WriteRandomModelFolder(const std::string& dir,
                                                   const RandomModelOptions& options) {
  ModelFolderContents c;
  LV_ASSIGN_OR_RETURN(c.dit_config, wan::NamedDitConfig(options.config));
  const bool tiny = options.config == "tiny" || options.small_companions;
  LV_ASSIGN_OR_RETURN(c.t5_config, wan::T5Config::Named(tiny ? "tiny" : "umt5-xxl"));
  LV_ASSIGN_OR_RETURN(c.vae_config, wan::VaeConfig::Named(tiny ? "tiny" : "wan2.1"));
  c.tokenizer_model_file = options.tokenizer_model_file;
  LV_ASSIGN_OR_RETURN(auto tokenizer, wan::T5Tokenizer::Create(c.tokenizer_model_file));
  if (tiny) {
    // The tiny text encoder must produce the DiT's text width and cover the tokenizer.
    c.t5_config.dim = c.t5_config.dim_attn = c.dit_config.text_dim;
    c.t5_config.vocab = tokenizer->vocab_size();
  } else if (tokenizer->vocab_size() > c.t5_config.vocab) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer vocabulary ", tokenizer->vocab_size(),
                                                   " exceeds the text encoder's ",
                                                   c.t5_config.vocab));
  }
  auto cast = [&](const io::TensorMap& in) {
    io::TensorMap out;
    for (const auto& [k, v] : in) {
      out[k] = v.is_floating_point() ? v.detach().to(options.dtype).contiguous() : v.detach();
    }
    return out;
  };
  auto count = [](const io::TensorMap& m) {
    int64_t n = 0;
    for (const auto& [k, v] : m) n += v.numel();
    return n;
  };
  torch::manual_seed(options.seed);
  {
    LV_ASSIGN_OR_RETURN(auto dit, wan::CreateWanModel(c.dit_config));
    c.dit = cast(io::StateDict(*dit));
  }
  {
    LV_ASSIGN_OR_RETURN(auto t5, wan::CreateT5Encoder(c.t5_config));
    c.text_encoder = cast(io::StateDict(*t5));
  }
  {
    LV_ASSIGN_OR_RETURN(auto vae, wan::CreateWanVae(c.vae_config));
    c.vae = cast(io::StateDict(*vae));
  }
  LV_RETURN_IF_ERROR(WriteModelFolder(dir, c));
  if (tiny) {
    // Small serving defaults so the tiny model generates in seconds.
    const std::string index_path = (fs::path(dir) / "model_index.json").string();
    LV_ASSIGN_OR_RETURN(nlohmann::json index, io::ReadJsonFile(index_path));
    index["linvideo"] = {{"default_width", 64}, {"default_height", 64},    {"default_frames", 5},
                         {"default_steps", 4},  {"default_guidance", 5.0}, {"default_shift", 5.0},
                         {"max_width", 256},    {"max_height", 256},       {"max_frames", 33},
                         {"max_steps", 100}};
    LV_RETURN_IF_ERROR(io::WriteJsonFile(index_path, index));
  }
  return absl::StrCat("transformer ", count(c.dit), " params, text encoder ", count(c.text_encoder),
                      ", vae ", count(c.vae));
}

bool WeightsRewrite::Covers(const std::string& rel_file) const {
  const fs::path rel(rel_file);
  // A file at the root has an empty parent; the root component's dir is ".".
  const fs::path parent = rel.parent_path().empty() ? fs::path(".") : rel.parent_path();
  if (parent.lexically_normal() != fs::path(dir).lexically_normal()) return false;
  const std::string name = rel.filename().string();
  const bool checkpoint = io::IsTorchCheckpointName(name);
  if (name.find(".safetensors") == std::string::npos && !checkpoint) return false;
  // Without a stem a component owns its folder's weight files, but not at the root of an official
  // folder, where the VAE's and umT5's .pth files sit beside the DiT's.
  if (stem.empty() && checkpoint && parent.lexically_normal() == fs::path(".")) return false;
  return stem.empty() || name.rfind(stem + ".", 0) == 0 || name.rfind(stem + "-", 0) == 0;
}

WeightsRewrite RewriteOf(const ComponentPath& c, const std::string& root,
                         const std::string& default_stem) {
  return {fs::relative(c.dir, root).string(), c.weights_stem, default_stem};
}

absl::Status CopyModelFolder(const std::string& from, const std::string& to,
                             const std::vector<WeightsRewrite>& rewrites) {
  std::error_code ec;
  fs::create_directories(to, ec);
  for (auto it = fs::recursive_directory_iterator(from, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path rel = fs::relative(it->path(), from, ec);
    if (it->is_directory()) {
      fs::create_directories(fs::path(to) / rel, ec);
      continue;
    }
    const bool skip = std::any_of(rewrites.begin(), rewrites.end(),
                                  [&](const WeightsRewrite& r) { return r.Covers(rel.string()); });
    if (!skip)
      fs::copy_file(it->path(), fs::path(to) / rel, fs::copy_options::overwrite_existing, ec);
    if (ec) break;
  }
  if (ec) {
    return absl::InternalError(absl::StrCat("copying ", from, " to ", to, ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace linvideo::core::pipeline

#include "core/models/wan/wan_config.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status.h"
#include "core/io/json_fields.h"

namespace linvideo::core::wan {
namespace {

using attention::AttentionKind;
using nlohmann::json;

constexpr char kOriginalClass[] = "WanModel";
constexpr char kDiffusersClass[] = "WanTransformer3DModel";
constexpr char kDiffusersQkNorm[] = "rms_norm_across_heads";

// Field reader: absent or null keeps the default; a wrong type is INVALID_ARGUMENT naming the key.
template <typename T>
absl::Status Read(const json& j, const char* key, T* out) {
  return io::ReadJsonField(j, key, "DiT config", out);
}

absl::Status ReadIntList(const json& j, const char* key, size_t size, std::vector<int64_t>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  bool ok = it->is_array() && it->size() == size;
  if (ok) {
    for (const auto& v : *it) ok = ok && v.is_number_integer();
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DiT config field '", key, "' must be a list of ", size, " integers, got ", it->dump()));
  }
  out->clear();
  for (const auto& v : *it) out->push_back(v.get<int64_t>());
  return absl::OkStatus();
}

absl::Status ReadPatchSize(const json& j, WanConfig* config) {
  std::vector<int64_t> patch(config->patch_size.begin(), config->patch_size.end());
  LV_RETURN_IF_ERROR(ReadIntList(j, "patch_size", 3, &patch));
  std::copy(patch.begin(), patch.end(), config->patch_size.begin());
  return absl::OkStatus();
}

// "attention_kinds": absent -> all softmax; otherwise one name per layer.
absl::Status ReadAttentionKinds(const json& j, WanConfig* config) {
  // Checked before anything is sized by it (num_layers 1e17 was an out-of-memory abort, found by
  // model_config_fuzz).
  if (config->num_layers < 1 || config->num_layers > WanConfig::kMaxLayers) {
    return absl::InvalidArgumentError(absl::StrCat("DiT config field 'num_layers' must be in [1, ",
                                                   WanConfig::kMaxLayers, "], got ",
                                                   config->num_layers));
  }
  auto it = j.find("attention_kinds");
  if (it == j.end() || it->is_null()) {
    config->SetNumLayers(config->num_layers);
    config->attention_kinds.assign(config->attention_kinds.size(), AttentionKind::kSoftmax);
    return absl::OkStatus();
  }
  if (!it->is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat("DiT config field 'attention_kinds' must be a list of names (softmax, linear, "
                     "hybrid), got ",
                     it->dump()));
  }
  config->attention_kinds.clear();
  for (const auto& v : *it) {
    if (!v.is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "DiT config 'attention_kinds' entries must be strings (softmax, linear, hybrid), got ",
          v.dump()));
    }
    LV_ASSIGN_OR_RETURN(AttentionKind kind, attention::ParseAttentionKind(v.get<std::string>()));
    config->attention_kinds.push_back(kind);
  }
  return absl::OkStatus();
}

absl::Status CheckPositive(const char* name, int64_t value) {
  if (value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("DiT config field '", name, "' must be positive, got ", value));
}

absl::StatusOr<WanConfig> FromOriginalJson(const json& j) {
  WanConfig c;
  // The official WanModel constructor defaults, for fields an official config.json may omit
  // (its ignore_for_config list keeps patch_size, qk_norm, cross_attn_norm, text_dim out).
  c.dim = 2048;
  c.ffn_dim = 8192;
  c.num_heads = 16;
  c.num_layers = 32;
  if (auto it = j.find("model_type"); it != j.end() && !it->is_null()) {
    const std::string type = it->is_string() ? it->get<std::string>() : it->dump();
    if (type == "i2v" || type == "flf2v" || type == "vace") {
      return absl::UnimplementedError(absl::StrCat(
          "DiT model_type '", type, "' is not supported; only 't2v' (text-to-video) is"));
    }
    if (type != "t2v") {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown DiT model_type '", type,
                       "'; allowed: t2v (i2v, flf2v, vace are not supported)"));
    }
  }
  if (auto it = j.find("window_size"); it != j.end() && !it->is_null()) {
    std::vector<int64_t> window;
    LV_RETURN_IF_ERROR(ReadIntList(j, "window_size", 2, &window));
    if (window[0] != -1 || window[1] != -1) {
      return absl::UnimplementedError(absl::StrCat(
          "DiT window_size ", it->dump(), " is not supported; only global attention [-1, -1] is"));
    }
  }
  LV_RETURN_IF_ERROR(Read(j, "dim", &c.dim));
  LV_RETURN_IF_ERROR(Read(j, "ffn_dim", &c.ffn_dim));
  LV_RETURN_IF_ERROR(Read(j, "freq_dim", &c.freq_dim));
  LV_RETURN_IF_ERROR(Read(j, "text_dim", &c.text_dim));
  LV_RETURN_IF_ERROR(Read(j, "text_len", &c.text_len));
  LV_RETURN_IF_ERROR(Read(j, "in_dim", &c.in_dim));
  LV_RETURN_IF_ERROR(Read(j, "out_dim", &c.out_dim));
  LV_RETURN_IF_ERROR(Read(j, "num_heads", &c.num_heads));
  LV_RETURN_IF_ERROR(Read(j, "num_layers", &c.num_layers));
  LV_RETURN_IF_ERROR(ReadPatchSize(j, &c));
  LV_RETURN_IF_ERROR(Read(j, "eps", &c.eps));
  LV_RETURN_IF_ERROR(Read(j, "qk_norm", &c.qk_norm));
  LV_RETURN_IF_ERROR(Read(j, "cross_attn_norm", &c.cross_attn_norm));
  LV_RETURN_IF_ERROR(Read(j, "rope_max_seq_len", &c.rope_max_seq_len));
  LV_RETURN_IF_ERROR(ReadAttentionKinds(j, &c));
  return c;
}

absl::StatusOr<WanConfig> FromDiffusersJson(const json& j) {
  WanConfig c;
  // WanTransformer3DModel's constructor defaults (the 14B model).
  int64_t heads = 40, head_dim = 128;
  c.ffn_dim = 13824;
  c.num_layers = 40;
  for (const char* key : {"image_dim", "added_kv_proj_dim", "pos_embed_seq_len"}) {
    if (auto it = j.find(key); it != j.end() && !it->is_null()) {
      return absl::UnimplementedError(
          absl::StrCat("diffusers DiT config sets '", key, "' = ", it->dump(),
                       " (image-to-video / VACE); only text-to-video (null) is supported"));
    }
  }
  LV_RETURN_IF_ERROR(Read(j, "num_attention_heads", &heads));
  LV_RETURN_IF_ERROR(Read(j, "attention_head_dim", &head_dim));
  LV_RETURN_IF_ERROR(CheckPositive("num_attention_heads", heads));
  LV_RETURN_IF_ERROR(CheckPositive("attention_head_dim", head_dim));
  // Bounded before the product (1e18 heads overflowed it; found by model_config_fuzz).
  constexpr int64_t kMaxHeads = 1024, kMaxHeadDim = 4096;
  if (heads > kMaxHeads || head_dim > kMaxHeadDim) {
    return absl::InvalidArgumentError(absl::StrCat(
        "diffusers DiT config: num_attention_heads must be <= ", kMaxHeads,
        " and attention_head_dim <= ", kMaxHeadDim, ", got ", heads, " and ", head_dim));
  }
  c.num_heads = heads;
  c.dim = heads * head_dim;
  LV_RETURN_IF_ERROR(Read(j, "in_channels", &c.in_dim));
  c.out_dim = c.in_dim;  // diffusers: out_channels = out_channels or in_channels
  LV_RETURN_IF_ERROR(Read(j, "out_channels", &c.out_dim));
  LV_RETURN_IF_ERROR(Read(j, "text_dim", &c.text_dim));
  LV_RETURN_IF_ERROR(Read(j, "freq_dim", &c.freq_dim));
  LV_RETURN_IF_ERROR(Read(j, "ffn_dim", &c.ffn_dim));
  LV_RETURN_IF_ERROR(Read(j, "num_layers", &c.num_layers));
  LV_RETURN_IF_ERROR(Read(j, "cross_attn_norm", &c.cross_attn_norm));
  LV_RETURN_IF_ERROR(Read(j, "eps", &c.eps));
  LV_RETURN_IF_ERROR(ReadPatchSize(j, &c));
  LV_RETURN_IF_ERROR(Read(j, "rope_max_seq_len", &c.rope_max_seq_len));
  LV_RETURN_IF_ERROR(Read(j, "text_len", &c.text_len));  // linvideo extension
  if (auto it = j.find("qk_norm"); it != j.end()) {
    if (it->is_null()) {
      c.qk_norm = false;
    } else if (it->is_string() && it->get<std::string>() == kDiffusersQkNorm) {
      c.qk_norm = true;
    } else {
      return absl::UnimplementedError(absl::StrCat("diffusers DiT qk_norm ", it->dump(),
                                                   " is not supported; allowed: \"",
                                                   kDiffusersQkNorm, "\" or null"));
    }
  }
  LV_RETURN_IF_ERROR(ReadAttentionKinds(j, &c));
  return c;
}

bool AllSoftmax(const WanConfig& c) {
  return std::all_of(c.attention_kinds.begin(), c.attention_kinds.end(),
                     [](AttentionKind k) { return k == AttentionKind::kSoftmax; });
}

}  // namespace

void WanConfig::SetNumLayers(int64_t layers, AttentionKind kind) {
  num_layers = layers;
  attention_kinds.resize(static_cast<size_t>(std::max<int64_t>(0, layers)), kind);
}

absl::Status WanConfig::Validate() const {
  const std::pair<const char*, int64_t> sizes[] = {{"dim", dim},
                                                   {"ffn_dim", ffn_dim},
                                                   {"freq_dim", freq_dim},
                                                   {"text_dim", text_dim},
                                                   {"text_len", text_len},
                                                   {"in_dim", in_dim},
                                                   {"out_dim", out_dim},
                                                   {"num_heads", num_heads},
                                                   {"num_layers", num_layers},
                                                   {"patch_size[0]", patch_size[0]},
                                                   {"patch_size[1]", patch_size[1]},
                                                   {"patch_size[2]", patch_size[2]},
                                                   {"rope_max_seq_len", rope_max_seq_len}};
  // Upper bounds too: a hostile config must be refused here, not by the allocator later (Wan 2.1
  // 14B's largest size is ffn_dim 13824).
  constexpr int64_t kMaxSize = 1 << 16;
  for (const auto& [name, value] : sizes) {
    LV_RETURN_IF_ERROR(CheckPositive(name, value));
    if (value > kMaxSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("DiT config field '", name, "' must be <= ", kMaxSize, ", got ", value));
    }
  }
  if (num_layers > kMaxLayers) {
    return absl::InvalidArgumentError(
        absl::StrCat("DiT num_layers must be <= ", kMaxLayers, ", got ", num_layers));
  }
  if (freq_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("DiT freq_dim must be even ([cos, sin] halves), got ", freq_dim));
  }
  if (dim % num_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("DiT dim (", dim, ") must be divisible by num_heads (", num_heads, ")"));
  }
  // RoPE rotates adjacent pairs and splits head_dim into t/h/w parts of d-4(d/6), 2(d/6), 2(d/6)
  // dims: head_dim must be even and at least 6 so every axis gets a frequency.
  const int64_t d = head_dim();
  if (d % 2 != 0 || d < 6) {
    return absl::InvalidArgumentError(absl::StrCat("DiT head_dim = dim / num_heads = ", d,
                                                   " must be even and >= 6 for the 3-axis RoPE"));
  }
  if (!(eps > 0.0)) {
    return absl::InvalidArgumentError(absl::StrCat("DiT eps must be > 0, got ", eps));
  }
  if (static_cast<int64_t>(attention_kinds.size()) != num_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("DiT attention_kinds has ", attention_kinds.size(),
                     " entries; it needs exactly one per layer (num_layers = ", num_layers, ")"));
  }
  return absl::OkStatus();
}

DitConfigFormat DetectDitConfigFormat(const json& j) {
  if (!j.is_object()) return DitConfigFormat::kOriginal;
  if (j.contains("num_attention_heads") || j.contains("attention_head_dim") ||
      j.contains("in_channels")) {
    return DitConfigFormat::kDiffusers;
  }
  auto it = j.find("_class_name");
  if (it != j.end() && it->is_string() && it->get<std::string>() == kDiffusersClass) {
    return DitConfigFormat::kDiffusers;
  }
  return DitConfigFormat::kOriginal;
}

absl::StatusOr<WanConfig> WanConfig::FromJson(const json& j) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError("DiT config must be a JSON object, got " + j.dump());
  }
  const DitConfigFormat format = DetectDitConfigFormat(j);
  absl::StatusOr<WanConfig> config =
      format == DitConfigFormat::kDiffusers ? FromDiffusersJson(j) : FromOriginalJson(j);
  if (!config.ok()) return config.status();
  LV_RETURN_IF_ERROR(config->Validate());
  return config;
}

json WanConfig::ToJson(DitConfigFormat format) const {
  json j;
  const std::vector<int64_t> patch(patch_size.begin(), patch_size.end());
  if (format == DitConfigFormat::kOriginal) {
    j["_class_name"] = kOriginalClass;
    j["model_type"] = "t2v";
    j["dim"] = dim;
    j["ffn_dim"] = ffn_dim;
    j["freq_dim"] = freq_dim;
    j["text_dim"] = text_dim;
    j["text_len"] = text_len;
    j["in_dim"] = in_dim;
    j["out_dim"] = out_dim;
    j["num_heads"] = num_heads;
    j["num_layers"] = num_layers;
    j["patch_size"] = patch;
    j["window_size"] = std::vector<int64_t>{-1, -1};
    j["qk_norm"] = qk_norm;
    j["cross_attn_norm"] = cross_attn_norm;
    j["eps"] = eps;
    if (rope_max_seq_len != 1024) j["rope_max_seq_len"] = rope_max_seq_len;
  } else {
    j["_class_name"] = kDiffusersClass;
    j["patch_size"] = patch;
    j["num_attention_heads"] = num_heads;
    j["attention_head_dim"] = head_dim();
    j["in_channels"] = in_dim;
    j["out_channels"] = out_dim;
    j["text_dim"] = text_dim;
    j["freq_dim"] = freq_dim;
    j["ffn_dim"] = ffn_dim;
    j["num_layers"] = num_layers;
    j["cross_attn_norm"] = cross_attn_norm;
    j["qk_norm"] = qk_norm ? json(kDiffusersQkNorm) : json(nullptr);
    j["eps"] = eps;
    j["image_dim"] = nullptr;
    j["added_kv_proj_dim"] = nullptr;
    j["rope_max_seq_len"] = rope_max_seq_len;
    j["pos_embed_seq_len"] = nullptr;
    if (text_len != 512) j["text_len"] = text_len;
  }
  if (!AllSoftmax(*this)) {
    std::vector<std::string> names;
    for (AttentionKind k : attention_kinds) names.push_back(attention::AttentionKindName(k));
    j["attention_kinds"] = names;
  }
  return j;
}

std::vector<std::string> NamedDitConfigNames() {
  return {"wan2.1-t2v-1.3b", "wan2.1-t2v-14b", "tiny"};
}

absl::StatusOr<WanConfig> NamedDitConfig(const std::string& name) {
  WanConfig c;  // the 1.3B defaults
  if (name == "wan2.1-t2v-1.3b") {
    // Defaults already.
  } else if (name == "wan2.1-t2v-14b") {
    c.dim = 5120;
    c.ffn_dim = 13824;
    c.num_heads = 40;
    c.SetNumLayers(40);
  } else if (name == "tiny") {
    c.dim = 128;
    c.ffn_dim = 256;
    c.freq_dim = 32;
    c.text_dim = 64;
    c.text_len = 32;
    c.num_heads = 2;
    c.SetNumLayers(2);
  } else {
    return absl::NotFoundError(absl::StrCat(
        "unknown DiT config '", name, "'; known: ", absl::StrJoin(NamedDitConfigNames(), ", ")));
  }
  LV_RETURN_IF_ERROR(c.Validate());
  return c;
}

}  // namespace linvideo::core::wan

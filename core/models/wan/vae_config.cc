#include "core/models/wan/vae_config.h"

#include <string>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/io/json_fields.h"

namespace linvideo::core::wan {
namespace {

using nlohmann::json;

// Per-channel statistics of the released Wan 2.1 VAE latents (wan/modules/vae.py, WanVAE).
const std::vector<double>& Wan21LatentsMean() {
  static const std::vector<double> kMean = {-0.7571, -0.7089, -0.9113, 0.1075,  -0.1745, 0.9653,
                                            -0.1517, 1.5508,  0.4134,  -0.0715, 0.5517,  -0.3632,
                                            -0.1922, -0.9497, 0.2503,  -0.2921};
  return kMean;
}
const std::vector<double>& Wan21LatentsStd() {
  static const std::vector<double> kStd = {2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708,
                                           2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579,
                                           1.6382, 1.1253, 2.8251, 1.9160};
  return kStd;
}

absl::Status FieldError(const char* key, const std::string& want, const json& got) {
  return absl::InvalidArgumentError(
      absl::StrCat("VAE config: field \"", key, "\" must be ", want, ", got ", got.dump()));
}

// Config fields: absent or null keeps the default; a wrong type is INVALID_ARGUMENT naming the key.
template <typename T>
absl::Status Read(const json& j, const char* key, T* out) {
  return io::ReadJsonField(j, key, "VAE config", out);
}

// Rejects settings that select a different architecture than the Wan 2.1 VAE implemented here.
absl::Status CheckUnsupported(const json& j, int64_t base_dim) {
  if (j.contains("is_residual") && j["is_residual"].is_boolean() && j["is_residual"].get<bool>()) {
    return absl::InvalidArgumentError(
        "VAE config: is_residual=true (the Wan 2.2 VAE) is not supported; allowed: false");
  }
  if (j.contains("decoder_base_dim") && !j["decoder_base_dim"].is_null() &&
      j["decoder_base_dim"] != json(base_dim)) {
    return FieldError("decoder_base_dim",
                      absl::StrCat("null or equal to base_dim (", base_dim, ")"),
                      j["decoder_base_dim"]);
  }
  if (j.contains("patch_size") && !j["patch_size"].is_null() && j["patch_size"] != json(1)) {
    return FieldError("patch_size", "null or 1", j["patch_size"]);
  }
  for (const char* key : {"in_channels", "out_channels"}) {
    if (j.contains(key) && !j[key].is_null() && j[key] != json(3)) {
      return FieldError(key, "3 (RGB)", j[key]);
    }
  }
  return absl::OkStatus();
}

}  // namespace

VaeConfig::VaeConfig() : latents_mean(Wan21LatentsMean()), latents_std(Wan21LatentsStd()) {}

int64_t VaeConfig::temporal_stride() const {
  int64_t s = 1;
  for (bool t : temperal_downsample) s *= t ? 2 : 1;
  return s;
}

int64_t VaeConfig::spatial_stride() const {
  return dim_mult.empty() ? 1 : int64_t{1} << (dim_mult.size() - 1);
}

absl::Status VaeConfig::Validate() const {
  auto bad = [](const std::string& msg) {
    return absl::InvalidArgumentError(absl::StrCat("VAE config: ", msg));
  };
  if (base_dim <= 0 || base_dim % 2 != 0) {
    return bad(absl::StrCat("base_dim must be a positive even number, got ", base_dim));
  }
  if (z_dim <= 0) return bad(absl::StrCat("z_dim must be positive, got ", z_dim));
  // The decoder's channel-halving upsamplers follow Wan 2.1 (i > 0 takes half the channels), which
  // is defined for 2..4 stages in the official code.
  if (dim_mult.size() < 2 || dim_mult.size() > 4) {
    return bad(absl::StrCat("dim_mult must have 2 to 4 entries, got ", dim_mult.size()));
  }
  for (int64_t m : dim_mult) {
    if (m <= 0) return bad(absl::StrCat("dim_mult entries must be positive, got ", m));
  }
  if (num_res_blocks < 1) {
    return bad(absl::StrCat("num_res_blocks must be >= 1, got ", num_res_blocks));
  }
  if (temperal_downsample.size() != dim_mult.size() - 1) {
    return bad(absl::StrCat("temperal_downsample needs dim_mult.size()-1 = ", dim_mult.size() - 1,
                            " entries, got ", temperal_downsample.size()));
  }
  // The official Encoder3d/Decoder3d call stage attention blocks with the feature cache, which
  // their forward() does not take, so no released or reference model uses stage attention.
  if (!attn_scales.empty()) {
    return bad(
        "attn_scales must be empty (stage attention blocks are not supported; the middle "
        "blocks always have attention)");
  }
  if (dropout < 0.0 || dropout >= 1.0) {
    return bad(absl::StrCat("dropout must be in [0, 1), got ", dropout));
  }
  if (static_cast<int64_t>(latents_mean.size()) != z_dim ||
      static_cast<int64_t>(latents_std.size()) != z_dim) {
    return bad(absl::StrCat("latents_mean and latents_std need z_dim = ", z_dim,
                            " values each, got ", latents_mean.size(), " and ",
                            latents_std.size()));
  }
  for (double s : latents_std) {
    if (!(s > 0.0)) return bad(absl::StrCat("latents_std values must be > 0, got ", s));
  }
  return absl::OkStatus();
}

absl::StatusOr<VaeConfig> VaeConfig::Named(const std::string& name) {
  VaeConfig c;
  if (name == "wan2.1") return c;
  if (name == "tiny") {
    c.base_dim = 8;
    c.num_res_blocks = 1;
    return c;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown VAE config \"", name, "\"; allowed: \"wan2.1\", \"tiny\""));
}

absl::StatusOr<VaeConfig> VaeConfig::FromJson(const json& j) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("VAE config must be a JSON object, got ", j.type_name()));
  }
  VaeConfig c;
  const bool diffusers = j.contains("base_dim") || j.contains("_class_name");
  if (diffusers) {
    if (j.contains("_class_name") && j["_class_name"] != json("AutoencoderKLWan")) {
      return FieldError("_class_name", "\"AutoencoderKLWan\"", j["_class_name"]);
    }
    if (absl::Status s = Read(j, "base_dim", &c.base_dim); !s.ok()) return s;
  } else {
    if (absl::Status s = Read(j, "dim", &c.base_dim); !s.ok()) return s;
  }
  if (absl::Status s = CheckUnsupported(j, c.base_dim); !s.ok()) return s;
  if (absl::Status s = Read(j, "z_dim", &c.z_dim); !s.ok()) return s;
  if (absl::Status s = Read(j, "dim_mult", &c.dim_mult); !s.ok()) return s;
  if (absl::Status s = Read(j, "num_res_blocks", &c.num_res_blocks); !s.ok()) return s;
  if (absl::Status s = Read(j, "attn_scales", &c.attn_scales); !s.ok()) return s;
  if (absl::Status s = Read(j, "temperal_downsample", &c.temperal_downsample); !s.ok()) {
    return s;
  }
  if (absl::Status s = Read(j, "dropout", &c.dropout); !s.ok()) return s;
  const char* mean_key = j.contains("latents_mean") || diffusers ? "latents_mean" : "mean";
  const char* std_key = j.contains("latents_std") || diffusers ? "latents_std" : "std";
  if (absl::Status s = Read(j, mean_key, &c.latents_mean); !s.ok()) return s;
  if (absl::Status s = Read(j, std_key, &c.latents_std); !s.ok()) return s;
  if (absl::Status s = c.Validate(); !s.ok()) return s;
  return c;
}

json VaeConfig::ToJson() const {
  json j;
  j["_class_name"] = "AutoencoderKLWan";
  j["base_dim"] = base_dim;
  j["z_dim"] = z_dim;
  j["dim_mult"] = dim_mult;
  j["num_res_blocks"] = num_res_blocks;
  j["attn_scales"] = attn_scales;
  j["temperal_downsample"] = json::array();
  for (bool t : temperal_downsample) j["temperal_downsample"].push_back(t);
  j["dropout"] = dropout;
  j["latents_mean"] = latents_mean;
  j["latents_std"] = latents_std;
  return j;
}

bool operator==(const VaeConfig& a, const VaeConfig& b) {
  return a.base_dim == b.base_dim && a.z_dim == b.z_dim && a.dim_mult == b.dim_mult &&
         a.num_res_blocks == b.num_res_blocks && a.attn_scales == b.attn_scales &&
         a.temperal_downsample == b.temperal_downsample && a.dropout == b.dropout &&
         a.latents_mean == b.latents_mean && a.latents_std == b.latents_std;
}

}  // namespace linvideo::core::wan

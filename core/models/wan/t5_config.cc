#include "core/models/wan/t5_config.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "core/io/json_fields.h"

namespace linvideo::core::wan {
namespace {

using nlohmann::json;

// Config fields: absent or null keeps the default; a wrong type is INVALID_ARGUMENT naming the key.
template <typename T>
absl::Status Read(const json& j, const char* key, T* out) {
  return io::ReadJsonField(j, key, "T5 config", out);
}
absl::Status ReadRequired(const json& j, const char* key, int64_t* out) {
  if (absl::Status s = io::RequireJsonField(j, key, "T5 config"); !s.ok()) return s;
  return Read(j, key, out);
}

absl::StatusOr<T5Config> FromHfJson(const json& j) {
  T5Config c;
  int64_t d_kv = 64;
  if (absl::Status s = ReadRequired(j, "vocab_size", &c.vocab); !s.ok()) return s;
  if (absl::Status s = ReadRequired(j, "d_model", &c.dim); !s.ok()) return s;
  if (absl::Status s = ReadRequired(j, "d_kv", &d_kv); !s.ok()) return s;
  if (absl::Status s = ReadRequired(j, "d_ff", &c.dim_ffn); !s.ok()) return s;
  if (absl::Status s = ReadRequired(j, "num_heads", &c.num_heads); !s.ok()) return s;
  if (absl::Status s = ReadRequired(j, "num_layers", &c.num_layers); !s.ok()) return s;
  if (absl::Status s = Read(j, "relative_attention_num_buckets", &c.num_buckets); !s.ok()) {
    return s;
  }
  if (absl::Status s = Read(j, "relative_attention_max_distance", &c.max_distance); !s.ok()) {
    return s;
  }
  if (absl::Status s = Read(j, "layer_norm_epsilon", &c.eps); !s.ok()) return s;
  // Bounded before the product (no signed overflow from a hostile config).
  constexpr int64_t kMaxHeads = 1024, kMaxHeadDim = 4096;
  if (c.num_heads < 1 || c.num_heads > kMaxHeads || d_kv < 1 || d_kv > kMaxHeadDim) {
    return absl::InvalidArgumentError(absl::StrCat("T5 config: num_heads must be in [1, ",
                                                   kMaxHeads, "] and d_kv in [1, ", kMaxHeadDim,
                                                   "], got ", c.num_heads, " and ", d_kv));
  }
  c.dim_attn = c.num_heads * d_kv;
  // HF's T5Config defaults feed_forward_proj to "relu" (original T5, ungated); only the gated-GELU
  // variant (T5 v1.1, mT5, umT5) is implemented.
  // (Read, not json::value: a non-string value threw an uncaught exception; model_config_fuzz.)
  std::string ffn = "relu";
  if (absl::Status s = Read(j, "feed_forward_proj", &ffn); !s.ok()) return s;
  if (ffn != "gated-gelu") {
    return absl::InvalidArgumentError(absl::StrCat("T5 config: feed_forward_proj \"", ffn,
                                                   "\" is not supported; allowed: \"gated-gelu\""));
  }
  // UMT5 has a relative position table per layer; T5 and mT5 share the one of block 0.
  std::string model_type = "umt5";
  if (absl::Status s = Read(j, "model_type", &model_type); !s.ok()) return s;
  c.shared_pos = model_type != "umt5";
  return c;
}

absl::StatusOr<T5Config> FromWanJson(const json& j) {
  T5Config c;
  // The official code names the vocabulary `vocab` in T5Encoder and `vocab_size` in umt5_xxl().
  if (j.contains("vocab")) {
    if (absl::Status s = ReadRequired(j, "vocab", &c.vocab); !s.ok()) return s;
  } else if (absl::Status s = ReadRequired(j, "vocab_size", &c.vocab); !s.ok()) {
    return s;
  }
  if (absl::Status s = ReadRequired(j, "dim", &c.dim); !s.ok()) return s;
  c.dim_attn = c.dim;
  if (absl::Status s = Read(j, "dim_attn", &c.dim_attn); !s.ok()) return s;
  if (absl::Status s = ReadRequired(j, "dim_ffn", &c.dim_ffn); !s.ok()) return s;
  if (absl::Status s = ReadRequired(j, "num_heads", &c.num_heads); !s.ok()) return s;
  if (j.contains("num_layers")) {
    if (absl::Status s = ReadRequired(j, "num_layers", &c.num_layers); !s.ok()) return s;
  } else if (absl::Status s = ReadRequired(j, "encoder_layers", &c.num_layers); !s.ok()) {
    return s;
  }
  if (absl::Status s = Read(j, "num_buckets", &c.num_buckets); !s.ok()) return s;
  if (absl::Status s = Read(j, "max_distance", &c.max_distance); !s.ok()) return s;
  if (absl::Status s = Read(j, "eps", &c.eps); !s.ok()) return s;
  if (absl::Status s = Read(j, "shared_pos", &c.shared_pos); !s.ok()) return s;
  return c;
}

}  // namespace

absl::Status T5Config::Validate() const {
  auto positive = [](const char* name, int64_t v) -> absl::Status {
    if (v > 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("T5 config: ", name, " must be > 0, got ", v));
  };
  for (auto [name, v] : {std::pair<const char*, int64_t>{"vocab", vocab},
                         {"dim", dim},
                         {"dim_attn", dim_attn},
                         {"dim_ffn", dim_ffn},
                         {"num_heads", num_heads},
                         {"num_layers", num_layers}}) {
    if (absl::Status s = positive(name, v); !s.ok()) return s;
  }
  if (dim_attn % num_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "T5 config: dim_attn (", dim_attn, ") must be a multiple of num_heads (", num_heads, ")"));
  }
  // Bidirectional buckets: half per direction, and half of those exact; at least 1 log bucket.
  if (num_buckets < 4 || num_buckets % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("T5 config: num_buckets must be an even number >= 4, got ", num_buckets));
  }
  if (max_distance <= num_buckets / 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("T5 config: max_distance must be > num_buckets/4 (", num_buckets / 4,
                     "), got ", max_distance));
  }
  if (!(eps > 0.0)) {
    return absl::InvalidArgumentError(absl::StrCat("T5 config: eps must be > 0, got ", eps));
  }
  return absl::OkStatus();
}

absl::StatusOr<T5Config> T5Config::Named(const std::string& name) {
  T5Config c;
  if (name == "umt5-xxl") return c;  // the defaults are umT5-XXL (Wan 2.1)
  if (name == "tiny") {
    c.vocab = 256;
    c.dim = 32;
    c.dim_attn = 32;
    c.dim_ffn = 48;
    c.num_heads = 4;
    c.num_layers = 2;
    c.num_buckets = 32;
    c.max_distance = 128;
    return c;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown T5 config name \"", name, "\"; allowed: \"umt5-xxl\", \"tiny\""));
}

absl::StatusOr<T5Config> T5Config::FromJson(const nlohmann::json& json) {
  if (!json.is_object()) {
    return absl::InvalidArgumentError("T5 config: expected a JSON object");
  }
  absl::StatusOr<T5Config> c;
  if (json.contains("d_model")) {
    c = FromHfJson(json);
  } else if (json.contains("dim")) {
    c = FromWanJson(json);
  } else {
    return absl::InvalidArgumentError(
        "T5 config: neither a Hugging Face T5/UMT5 config (\"d_model\", \"d_kv\", \"d_ff\", ...) "
        "nor a Wan-style one (\"dim\", \"dim_attn\", \"dim_ffn\", ...)");
  }
  if (!c.ok()) return c.status();
  if (absl::Status s = c->Validate(); !s.ok()) return s;
  return c;
}

nlohmann::json T5Config::ToJson() const {
  return json{
      {"architectures", json::array({shared_pos ? "T5EncoderModel" : "UMT5EncoderModel"})},
      {"model_type", shared_pos ? "t5" : "umt5"},
      {"vocab_size", vocab},
      {"d_model", dim},
      {"d_kv", head_dim()},
      {"d_ff", dim_ffn},
      {"num_heads", num_heads},
      {"num_layers", num_layers},
      {"relative_attention_num_buckets", num_buckets},
      {"relative_attention_max_distance", max_distance},
      {"feed_forward_proj", "gated-gelu"},
      {"dense_act_fn", "gelu_new"},
      {"is_gated_act", true},
      {"layer_norm_epsilon", eps},
      {"pad_token_id", 0},
      {"eos_token_id", 1},
  };
}

bool operator==(const T5Config& a, const T5Config& b) {
  return a.vocab == b.vocab && a.dim == b.dim && a.dim_attn == b.dim_attn &&
         a.dim_ffn == b.dim_ffn && a.num_heads == b.num_heads && a.num_layers == b.num_layers &&
         a.num_buckets == b.num_buckets && a.max_distance == b.max_distance && a.eps == b.eps &&
         a.shared_pos == b.shared_pos;
}

}  // namespace linvideo::core::wan

// AttentionKind names (core/attention/attention.h), apart from the layer implementations: config
// parsing needs only these (and tests/fuzz links them without the kernels).
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/attention/attention.h"

namespace linvideo::core::attention {

absl::StatusOr<AttentionKind> ParseAttentionKind(const std::string& name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "softmax") return AttentionKind::kSoftmax;
  if (n == "linear") return AttentionKind::kLinear;
  if (n == "hybrid") return AttentionKind::kHybrid;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown attention kind '", name, "'; allowed: softmax, linear, hybrid"));
}

std::string AttentionKindName(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::kSoftmax:
      return "softmax";
    case AttentionKind::kLinear:
      return "linear";
    case AttentionKind::kHybrid:
      return "hybrid";
  }
  return "unknown";
}

}  // namespace linvideo::core::attention

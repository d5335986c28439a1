#include "core/params/sampler_kind.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"

namespace linvideo::core::params {

absl::StatusOr<SamplerKind> ParseSamplerKind(const std::string& name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "unipc") return SamplerKind::kUniPC;
  if (lower == "euler") return SamplerKind::kEuler;
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown sampler \"%s\"; allowed: unipc, euler", name));
}

const char* SamplerKindName(SamplerKind kind) {
  return kind == SamplerKind::kUniPC ? "unipc" : "euler";
}

}  // namespace linvideo::core::params

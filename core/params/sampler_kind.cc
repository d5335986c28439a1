#include "core/params/sampler_kind.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"

namespace linvideo::core::params {

absl::StatusOr<SamplerKind> ParseSamplerKind(const std::string& name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "unipc") return SamplerKind::kUniPC;
  if (lower == "euler") return SamplerKind::kEuler;
  if (lower == "fewstep" || lower == "few-step" || lower == "few_step") {
    return SamplerKind::kFewStep;
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown sampler \"%s\"; allowed: unipc, euler, fewstep", name));
}

const char* SamplerKindName(SamplerKind kind) {
  switch (kind) {
    case SamplerKind::kUniPC:
      return "unipc";
    case SamplerKind::kEuler:
      return "euler";
    case SamplerKind::kFewStep:
      return "fewstep";
  }
  return "unknown";
}

}  // namespace linvideo::core::params

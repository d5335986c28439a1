#pragma once
// The samplers a request may choose. LibTorch-free, so the server's edge can name them without
// the sampling code (core/sampling/sampler.h implements them).

#include <string>

#include "absl/status/statusor.h"

namespace linvideo::core::params {

enum class SamplerKind { kUniPC, kEuler };

// "unipc" / "euler" (case-insensitive); the error lists the allowed names.
absl::StatusOr<SamplerKind> ParseSamplerKind(const std::string& name);
const char* SamplerKindName(SamplerKind kind);

}  // namespace linvideo::core::params

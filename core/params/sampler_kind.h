#pragma once
// The samplers a request may choose. LibTorch-free, so the server's edge can name them without
// the sampling code (core/sampling/sampler.h implements them).
//  * unipc   — Wan 2.1's default multistep solver (bh2, order 2).
//  * euler   — plain flow-matching Euler.
//  * fewstep — x̂₀ prediction and re-noising over an explicit timestep list
//    (core/sampling/few_step.h): what a distilled few-step model samples with; on other models a
//    baseline with evenly spaced timesteps.

#include <string>

#include "absl/status/statusor.h"

namespace linvideo::core::params {

enum class SamplerKind { kUniPC, kEuler, kFewStep };

// "unipc" / "euler" / "fewstep" (case-insensitive; "few-step" and "few_step" too); the error lists
// the allowed names.
absl::StatusOr<SamplerKind> ParseSamplerKind(const std::string& name);
const char* SamplerKindName(SamplerKind kind);

}  // namespace linvideo::core::params

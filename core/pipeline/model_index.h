#pragma once
// The "linvideo" serving section of a model folder's model_index.json: serving defaults and limits
// of the model (the small shipped models generate at smaller sizes than Wan's 832x480x81 defaults)
// and the sampler it was made for (a distilled model's fixed timestep list). LibTorch-free, so
// the parser is fuzzed on its own (tests/fuzz/model_config_fuzz.cc).

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "core/params/generation_params.h"

namespace linvideo::core::pipeline {

// Overrides `limits` with `index`'s optional "linvideo" section; leaves them as they are without
// one. `where` names the file in errors. INVALID_ARGUMENT for a malformed section: a field of the
// wrong type, an integer out of range, a size below min_size, a default above its maximum.
absl::Status ApplyServingSection(const nlohmann::json& index, const std::string& where,
                                 params::ModelLimits& limits);

}  // namespace linvideo::core::pipeline

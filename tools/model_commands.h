#pragma once
// Subcommands of `linvideo-model`. Each takes the arguments after the subcommand name and returns
// a status; the binary prints errors and maps them to exit codes.

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace linvideo::tools {

// init --config NAME --seed S [--dtype fp32|bf16] DIR
absl::Status RunInit(const std::vector<std::string>& args);
// inspect DIR
absl::Status RunInspect(const std::vector<std::string>& args);
// convert --model DIR --to diffusers|original --output DIR
absl::Status RunConvert(const std::vector<std::string>& args);
// convert-attention --model DIR --layers 2,3,5 [--kind linear|hybrid|softmax] --output DIR
absl::Status RunConvertAttention(const std::vector<std::string>& args);
// forward --model DIR --component dit|text-encoder|vae-decode|vae-encode --inputs F --output F
absl::Status RunForward(const std::vector<std::string>& args);

}  // namespace linvideo::tools

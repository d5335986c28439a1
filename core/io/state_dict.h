#pragma once
// Moving tensors between a TensorMap and a torch::nn::Module, with the checks a checkpoint loader
// needs: every parameter/buffer present, none unexpected, shapes equal.

#include <torch/nn/module.h>

#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "core/io/safetensors.h"

namespace linvideo::core::io {

struct LoadOptions {
  bool strict = true;  // missing or unexpected names are errors (listed in the message)
  // Names in the module to skip when checking for missing ones (e.g. non-persistent buffers).
  std::function<bool(const std::string&)> ignore_missing;
};

// Copies tensors into `module`'s parameters and buffers (the names of StateDict) under
// torch::NoGradGuard, converting dtype/device to the parameter's. INVALID_ARGUMENT lists missing,
// unexpected and shape-mismatched names (first 10 of each and the counts); shape mismatches are
// errors even when !strict. All checks run before the first copy, so a mismatch leaves the module
// untouched; only a failing copy (e.g. out of device memory) can leave it partially written.
// Not thread-safe with concurrent use of `module`.
absl::Status LoadStateDict(torch::nn::Module& module, const TensorMap& tensors,
                           const LoadOptions& options = {});

// The module's defined parameters and buffers by recursive name ("blocks.0.fc.weight"; views, not
// copies). Undefined slots such as the bias of Linear(bias=false) are left out.
TensorMap StateDict(const torch::nn::Module& module);

// Applies `rename` to every key; nullopt drops the key. Two keys mapping to one name is an error.
absl::StatusOr<TensorMap> RenameKeys(
    const TensorMap& tensors,
    const std::function<std::optional<std::string>(const std::string&)>& rename);

}  // namespace linvideo::core::io

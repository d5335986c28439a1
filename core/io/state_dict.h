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

// Copies tensors into `module`'s parameters and buffers by name (converting dtype/device to the
// parameter's). INVALID_ARGUMENT lists missing, unexpected and shape-mismatched names (first few of
// each and the counts). On error the module may be partially written: load into a fresh module.
absl::Status LoadStateDict(torch::nn::Module& module, const TensorMap& tensors,
                           const LoadOptions& options = {});

// The module's parameters and buffers by name (views, not copies).
TensorMap StateDict(const torch::nn::Module& module);

// Applies `rename` to every key; nullopt drops the key. Two keys mapping to one name is an error.
absl::StatusOr<TensorMap> RenameKeys(
    const TensorMap& tensors,
    const std::function<std::optional<std::string>(const std::string&)>& rename);

}  // namespace linvideo::core::io

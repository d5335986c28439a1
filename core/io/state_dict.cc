#include "core/io/state_dict.h"

#include <torch/types.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status.h"

namespace linvideo::core::io {
namespace {

constexpr size_t kListed = 10;  // names listed per category in an error message

std::string ShapeString(at::IntArrayRef s) {
  return absl::StrCat("[", absl::StrJoin(s, ", "), "]");
}

// "3 missing: a, b, c" — first kListed names, then "... (N more)".
std::string Describe(const std::string& what, const std::vector<std::string>& items) {
  std::vector<std::string> shown(items.begin(), items.begin() + std::min(items.size(), kListed));
  std::string s = absl::StrCat(items.size(), " ", what, ": ", absl::StrJoin(shown, ", "));
  if (items.size() > kListed) absl::StrAppend(&s, ", ... (", items.size() - kListed, " more)");
  return s;
}

}  // namespace

TensorMap StateDict(const torch::nn::Module& module) {
  TensorMap out;
  // Undefined slots (e.g. the bias of Linear(bias=false)) hold nothing to save or load.
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (item.value().defined()) out[item.key()] = item.value();
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    if (item.value().defined()) out[item.key()] = item.value();
  }
  return out;
}

absl::Status LoadStateDict(torch::nn::Module& module, const TensorMap& tensors,
                           const LoadOptions& options) {
  const TensorMap targets = StateDict(module);
  std::vector<std::string> missing, unexpected, mismatched;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // (destination, source)
  for (const auto& [name, dst] : targets) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      if (!(options.ignore_missing && options.ignore_missing(name))) missing.push_back(name);
      continue;
    }
    const torch::Tensor& src = it->second;
    if (!src.defined()) {
      mismatched.push_back(absl::StrCat(name, " (checkpoint tensor is undefined)"));
    } else if (src.sizes() != dst.sizes()) {
      mismatched.push_back(absl::StrCat(name, " (checkpoint ", ShapeString(src.sizes()),
                                        " vs module ", ShapeString(dst.sizes()), ")"));
    } else {
      copies.emplace_back(dst, src);
    }
  }
  for (const auto& [name, t] : tensors) {
    if (targets.count(name) == 0) unexpected.push_back(name);
  }
  std::vector<std::string> problems;
  if (options.strict && !missing.empty()) {
    problems.push_back(Describe("missing from the checkpoint", missing));
  }
  if (options.strict && !unexpected.empty()) {
    problems.push_back(Describe("unexpected (not in the module)", unexpected));
  }
  if (!mismatched.empty()) problems.push_back(Describe("with a shape mismatch", mismatched));
  if (!problems.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint does not match the module (", targets.size(), " parameters/buffers, ",
        tensors.size(), " checkpoint tensors): ", absl::StrJoin(problems, "; ")));
  }
  // Everything is validated before the first write, so a mismatch never leaves a half-loaded
  // module.
  return TorchCall("loading state dict", [&] {
    torch::NoGradGuard no_grad;
    for (auto& [dst, src] : copies) dst.copy_(src);  // converts dtype and device
  });
}

absl::StatusOr<TensorMap> RenameKeys(
    const TensorMap& tensors,
    const std::function<std::optional<std::string>(const std::string&)>& rename) {
  TensorMap out;
  std::map<std::string, std::string> origin;  // new name -> old name
  for (const auto& [name, t] : tensors) {
    std::optional<std::string> to = rename(name);
    if (!to.has_value()) continue;
    if (to->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("key \"", name, "\" was renamed to an empty name"));
    }
    auto [it, inserted] = origin.emplace(*to, name);
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat("keys \"", it->second, "\" and \"", name, "\" both map to \"", *to, "\""));
    }
    out.emplace(*to, t);
  }
  return out;
}

}  // namespace linvideo::core::io

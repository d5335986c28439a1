#include "core/posttrain/selective_transfer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace linvideo::core::posttrain {

absl::Status ValidateSelection(const SelectionOptions& o) {
  auto bad = [](auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  if (o.num_layers < 2) return bad("the model has ", o.num_layers, " layers; need at least 2");
  std::set<int64_t> pinned;
  for (int64_t p : o.pinned) {
    if (p < 0 || p >= o.num_layers) {
      return bad("pinned layer ", p, " is out of range: layers are 0..", o.num_layers - 1);
    }
    if (!pinned.insert(p).second) return bad("pinned layer ", p, " is listed twice");
  }
  const int64_t free_layers = o.num_layers - static_cast<int64_t>(pinned.size());
  if (o.linear_layers < 1 || o.linear_layers >= o.num_layers) {
    return bad("linear layers K = ", o.linear_layers, " is not allowed: use 1..", o.num_layers - 1,
               " for a ", o.num_layers, "-layer model");
  }
  if (o.linear_layers > free_layers) {
    return bad("linear layers K = ", o.linear_layers, " exceeds the ", free_layers,
               " layers that are not pinned (pinned: ", absl::StrJoin(o.pinned, ","),
               "); use K <= ", free_layers, " or pin fewer layers");
  }
  return absl::OkStatus();
}

std::vector<int64_t> HybridLayers(const SelectionOptions& o) {
  std::vector<int64_t> out;
  for (int64_t l = 0; l < o.num_layers; ++l) {
    if (std::find(o.pinned.begin(), o.pinned.end(), l) == o.pinned.end()) out.push_back(l);
  }
  return out;
}

torch::Tensor RoundStraightThrough(const torch::Tensor& r) {
  return r + (at::round(r) - r).detach();
}

torch::Tensor ConstraintLoss(const std::vector<torch::Tensor>& r, const SelectionOptions& o) {
  TORCH_CHECK(!r.empty(), "ConstraintLoss needs the gates of the hybrid layers");
  const double pinned = static_cast<double>(o.num_layers) - static_cast<double>(r.size());
  auto softmax_layers = RoundStraightThrough(r[0].clamp(0.0, 1.0));  // []
  for (size_t i = 1; i < r.size(); ++i)
    softmax_layers = softmax_layers + RoundStraightThrough(r[i].clamp(0.0, 1.0));
  const double target = static_cast<double>(o.num_layers - o.linear_layers) - pinned;
  return (softmax_layers - target).pow(2);  // []
}

torch::Tensor RegularizationLoss(const std::vector<torch::Tensor>& r, double alpha) {
  TORCH_CHECK(!r.empty(), "RegularizationLoss needs the gates of the hybrid layers");
  auto term = [alpha](const torch::Tensor& g) {
    return 1.0 - (2.0 * g.clamp(0.0, 1.0) - 1.0).abs().pow(alpha);  // []
  };
  auto total = term(r[0]);
  for (size_t i = 1; i < r.size(); ++i) total = total + term(r[i]);
  return total;
}

double RegularizerAlpha(int64_t step, int64_t total_steps, double start, double end) {
  if (total_steps <= 1) return end;
  const double f =
      std::clamp(static_cast<double>(step) / static_cast<double>(total_steps - 1), 0.0, 1.0);
  return start + (end - start) * f;
}

absl::StatusOr<Binarization> Binarize(const std::vector<double>& r, const SelectionOptions& o) {
  if (absl::Status valid = ValidateSelection(o); !valid.ok()) return valid;
  const std::vector<int64_t> layers = HybridLayers(o);
  if (r.size() != layers.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Binarize got ", r.size(), " gates for ", layers.size(), " hybrid layers"));
  }
  std::vector<size_t> order(r.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return r[a] < r[b]; });
  Binarization out;
  for (int64_t i = 0; i < o.linear_layers; ++i) out.linear.push_back(layers[order[i]]);
  std::sort(out.linear.begin(), out.linear.end());
  int64_t rounded_linear = 0;
  // nearbyint rounds half to even, as at::round does in the constraint loss.
  for (double g : r) rounded_linear += std::nearbyint(std::clamp(g, 0.0, 1.0)) == 0.0 ? 1 : 0;
  // Agreement: rounding alone picks K layers, and they are the K smallest.
  out.rounding_agreed = rounded_linear == o.linear_layers;
  return out;
}

}  // namespace linvideo::core::posttrain

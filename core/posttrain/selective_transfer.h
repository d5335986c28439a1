#pragma once
// LinVideo selective transfer (arXiv 2510.08318): every replaceable self-attention layer starts
// hybrid, o = r·softmax + (1 − r)·linear with a learnable r per layer, and two losses steer the r's
// to exactly K linear layers:
//   L_con = (Σ_l round(r_l) − (L − K))²      round(r) counts softmax layers (pinned layers count
//   1);
//                                            the rounding passes gradients straight through (STE)
//   L_reg = Σ_l (1 − |2·r_l − 1|^α)          pushes each r to 0 or 1; α anneals 20 → 2
// total L = L_objective + λ·(L_con + L_reg), λ = 0.01. At the end the r's are rounded into exactly
// K linear layers (the K smallest r when rounding disagrees). r is clamped to [0, 1] as the hybrid
// core's forward clamps it. Pure functions; thread-safe.

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace linvideo::core::posttrain {

struct SelectionOptions {
  int64_t num_layers = 0;     // L: self-attention layers of the DiT
  int64_t linear_layers = 0;  // K: how many become linear
  // Layers kept softmax (0-based). The paper linearised layer 0 and the model collapsed; it is
  // pinned by default.
  std::vector<int64_t> pinned = {0};
};

// INVALID_ARGUMENT, saying what is allowed, unless 1 <= K < L, every pinned index is in [0, L) and
// distinct, and K <= the unpinned layers.
absl::Status ValidateSelection(const SelectionOptions& options);

// The layers that train a gate r (every layer not pinned), in order.
std::vector<int64_t> HybridLayers(const SelectionOptions& options);

// round(r) in the forward pass, identity gradient in the backward pass.
torch::Tensor RoundStraightThrough(const torch::Tensor& r);

// L_con for the gates `r` of HybridLayers(options) (0-dim tensors, same order); the pinned layers
// count as softmax. Differentiable in r through the straight-through rounding.
torch::Tensor ConstraintLoss(const std::vector<torch::Tensor>& r, const SelectionOptions& options);

// L_reg = Σ (1 − |2·clamp(r, 0, 1) − 1|^α).
torch::Tensor RegularizationLoss(const std::vector<torch::Tensor>& r, double alpha);

// α of the regulariser at `step` of `total_steps`: linear from `start` (step 0) to `end` (the last
// step).
double RegularizerAlpha(int64_t step, int64_t total_steps, double start = 20.0, double end = 2.0);

struct Binarization {
  std::vector<int64_t> linear;  // the K layers that become linear, ascending
  bool rounding_agreed = true;  // round(r) alone gave exactly these K layers
};

// Rounds trained gates (values of the HybridLayers(options) gates, same order) into exactly K
// linear layers: those with the K smallest r (ties: the lower layer index).
absl::StatusOr<Binarization> Binarize(const std::vector<double>& r,
                                      const SelectionOptions& options);

}  // namespace linvideo::core::posttrain

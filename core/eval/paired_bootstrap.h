#pragma once
// Paired bootstrap confidence interval of a mean difference: two models scored on the same
// prompts and seeds give one difference per (prompt, seed); resampling those pairs with
// replacement gives the spread of their mean. Pure functions; thread-safe.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace linvideo::core::eval {

struct Interval {
  double mean = 0;        // mean of candidate − baseline over the pairs
  double lo = 0, hi = 0;  // percentile interval of the resampled means
};

// `candidate[i]` and `baseline[i]` are the same video's scores under the two models.
// INVALID_ARGUMENT for empty or mismatched inputs, resamples < 1 or a level outside (0, 1).
// Deterministic given `seed`.
absl::StatusOr<Interval> PairedBootstrap(const std::vector<double>& candidate,
                                         const std::vector<double>& baseline, int resamples = 10000,
                                         double level = 0.95, uint64_t seed = 0);

}  // namespace linvideo::core::eval

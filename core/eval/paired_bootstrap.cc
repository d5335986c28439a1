#include "core/eval/paired_bootstrap.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"

namespace linvideo::core::eval {

absl::StatusOr<Interval> PairedBootstrap(const std::vector<double>& candidate,
                                         const std::vector<double>& baseline, int resamples,
                                         double level, uint64_t seed) {
  if (candidate.empty() || candidate.size() != baseline.size()) {
    return absl::InvalidArgumentError(absl::StrCat("paired bootstrap needs as many candidate (",
                                                   candidate.size(), ") as baseline (",
                                                   baseline.size(), ") scores, at least one"));
  }
  if (resamples < 1 || !(level > 0 && level < 1)) {
    return absl::InvalidArgumentError("paired bootstrap needs resamples >= 1 and level in (0, 1)");
  }
  const size_t n = candidate.size();
  std::vector<double> diff(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    diff[i] = candidate[i] - baseline[i];
    sum += diff[i];
  }
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, n - 1);
  std::vector<double> means(static_cast<size_t>(resamples));
  for (double& m : means) {
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += diff[pick(rng)];
    m = s / static_cast<double>(n);
  }
  std::sort(means.begin(), means.end());
  auto quantile = [&](double q) {
    const double pos = q * static_cast<double>(resamples - 1);
    const size_t below = static_cast<size_t>(std::floor(pos));
    const size_t above = std::min(below + 1, means.size() - 1);
    return means[below] + (pos - static_cast<double>(below)) * (means[above] - means[below]);
  };
  Interval out;
  out.mean = sum / static_cast<double>(n);
  out.lo = quantile((1 - level) / 2);
  out.hi = quantile(1 - (1 - level) / 2);
  return out;
}

}  // namespace linvideo::core::eval

#include "core/posttrain/objectives.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace linvideo::core::posttrain {

AdmTerms AdmLoss(const torch::Tensor& x_hat, const torch::Tensor& u_teacher,
                 const torch::Tensor& u_student, const torch::Tensor& t,
                 const torch::Tensor& sample_weight) {
  TORCH_CHECK(
      x_hat.dim() >= 1 && x_hat.sizes() == u_teacher.sizes() && x_hat.sizes() == u_student.sizes(),
      "AdmLoss: x_hat, u_teacher and u_student must share a shape [B, ...], got ", x_hat.sizes(),
      ", ", u_teacher.sizes(), ", ", u_student.sizes());
  TORCH_CHECK(t.dim() == 1 && t.size(0) == x_hat.size(0), "AdmLoss: t must be [B = ", x_hat.size(0),
              "], got ", t.sizes());
  const auto gap = (u_teacher - u_student).detach().to(at::kFloat);  // [B, ...]
  const auto tc = t.detach().to(at::kFloat).clamp(kAdmMinT, 1.0);    // [B]
  std::vector<int64_t> view(static_cast<size_t>(x_hat.dim()), 1);
  view[0] = x_hat.size(0);
  auto weight = (1.0 - tc) / tc;  // [B]
  if (sample_weight.defined()) {
    TORCH_CHECK(sample_weight.dim() == 1 && sample_weight.size(0) == x_hat.size(0),
                "AdmLoss: sample_weight must be [B = ", x_hat.size(0), "], got ",
                sample_weight.sizes());
    weight = weight * sample_weight.detach().to(at::kFloat);
  }
  weight = weight.view(view);  // [B, 1, ...]
  AdmTerms out;
  out.surrogate = (weight * gap * x_hat.to(at::kFloat)).mean();  // []
  out.velocity_gap = gap.pow(2).mean();                          // []
  return out;
}

std::vector<double> AdmTimeWeights(const std::vector<double>& sigmas, AdmWeighting weighting) {
  TORCH_CHECK(sigmas.size() >= 2, "AdmTimeWeights: need at least 2 sigmas, got ", sigmas.size());
  std::vector<double> factor;  // |Δσ|·w(σ_{i+1}) for every step with σ_{i+1} > 0
  for (size_t i = 0; i + 1 < sigmas.size(); ++i) {
    const double next = sigmas[i + 1];
    if (!(next > 0)) break;
    const double t = std::max(next, kAdmMinT);
    factor.push_back(std::abs(next - sigmas[i]) * (1.0 - t) / t);
  }
  if (weighting == AdmWeighting::kPaper) return std::vector<double>(factor.size(), 1.0);
  double mean = 0;
  for (double f : factor) mean += f;
  mean /= std::max<size_t>(factor.size(), 1);
  std::vector<double> out;
  for (double f : factor) out.push_back(f > 0 ? mean / f : 1.0);
  return out;
}

torch::Tensor VelocityMseLoss(const torch::Tensor& u_student, const torch::Tensor& u_teacher) {
  TORCH_CHECK(u_student.sizes() == u_teacher.sizes(),
              "VelocityMseLoss: the velocities must share a shape, got ", u_student.sizes(),
              " and ", u_teacher.sizes());
  return (u_student.to(at::kFloat) - u_teacher.detach().to(at::kFloat)).pow(2).mean();
}

}  // namespace linvideo::core::posttrain

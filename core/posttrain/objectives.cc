#include "core/posttrain/objectives.h"

#include <ATen/ATen.h>

#include <vector>

namespace linvideo::core::posttrain {

AdmTerms AdmLoss(const torch::Tensor& x_hat, const torch::Tensor& u_teacher,
                 const torch::Tensor& u_student, const torch::Tensor& t) {
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
  const auto weight = ((1.0 - tc) / tc).view(view);  // [B, 1, ...]
  AdmTerms out;
  out.surrogate = (weight * gap * x_hat.to(at::kFloat)).mean();  // []
  out.velocity_gap = gap.pow(2).mean();                          // []
  return out;
}

torch::Tensor VelocityMseLoss(const torch::Tensor& u_student, const torch::Tensor& u_teacher) {
  TORCH_CHECK(u_student.sizes() == u_teacher.sizes(),
              "VelocityMseLoss: the velocities must share a shape, got ", u_student.sizes(),
              " and ", u_teacher.sizes());
  return (u_student.to(at::kFloat) - u_teacher.detach().to(at::kFloat)).pow(2).mean();
}

}  // namespace linvideo::core::posttrain

#include "core/attention/hybrid_attention.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "absl/strings/str_cat.h"
#include "kernels/softmax_attention.h"

namespace linvideo::core::attention {

absl::StatusOr<std::shared_ptr<HybridAttentionCoreImpl>> HybridAttentionCoreImpl::Create(
    const AttentionCoreOptions& options) {
  auto linear = LinearAttentionCoreImpl::Create(options);  // same shape / eps validation
  if (!linear.ok()) return linear.status();
  if (!(options.hybrid_r_init >= 0.0 && options.hybrid_r_init <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("hybrid attention r must be in [0, 1], got ", options.hybrid_r_init));
  }
  return std::make_shared<HybridAttentionCoreImpl>(options.num_heads, options.head_dim,
                                                   options.linear_eps, options.hybrid_r_init);
}

HybridAttentionCoreImpl::HybridAttentionCoreImpl(int64_t num_heads, int64_t head_dim, double eps,
                                                 double r_init)
    : LinearAttentionCoreImpl(num_heads, head_dim, eps) {
  r_ = register_parameter("r", at::full({}, r_init, at::kFloat));
}

void HybridAttentionCoreImpl::set_r(double value) {
  at::NoGradGuard no_grad;
  r_.fill_(value);
}

torch::Tensor HybridAttentionCoreImpl::forward(const torch::Tensor& q, const torch::Tensor& k,
                                               const torch::Tensor& v) {
  auto r = r_.clamp(0.0, 1.0);  // []
  const bool grad_r = torch::autograd::GradMode::is_enabled() && r_.requires_grad();
  if (!grad_r) {
    // Exact endpoints skip the other branch entirely (r = 1: a softmax layer, r = 0: linear).
    const double rv = r.item<double>();
    if (rv == 1.0) {
      softmax_calls_.fetch_add(1);
      return kernels::SoftmaxAttention(q, k, v);  // [B, N, heads, head_dim]
    }
    if (rv == 0.0) return LinearBranch(q, k, v);
  }
  softmax_calls_.fetch_add(1);
  auto soft = kernels::SoftmaxAttention(q, k, v);  // [B, N, heads, head_dim]
  auto lin = LinearBranch(q, k, v);                // [B, N, heads, head_dim]
  auto rr = r.to(soft.scalar_type());
  return soft * rr + lin * (1 - rr);
}

}  // namespace linvideo::core::attention

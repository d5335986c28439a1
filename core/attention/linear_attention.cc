#include "core/attention/linear_attention.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "kernels/linear_attention.h"

namespace linvideo::core::attention {

absl::StatusOr<std::shared_ptr<LinearAttentionCoreImpl>> LinearAttentionCoreImpl::Create(
    const AttentionCoreOptions& options) {
  if (options.num_heads <= 0 || options.head_dim <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("linear attention needs num_heads > 0 and head_dim > 0, got ",
                     options.num_heads, " and ", options.head_dim));
  }
  if (!(options.linear_eps > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("linear attention eps must be > 0, got ", options.linear_eps));
  }
  return std::make_shared<LinearAttentionCoreImpl>(options.num_heads, options.head_dim,
                                                   options.linear_eps);
}

LinearAttentionCoreImpl::LinearAttentionCoreImpl(int64_t num_heads, int64_t head_dim, double eps)
    : num_heads_(num_heads), head_dim_(head_dim), eps_(eps) {
  // fp32 like every other parameter at creation; the runtime may cast the module afterwards.
  auto eye = at::eye(head_dim, at::kFloat).expand({num_heads, head_dim, head_dim});
  feature_map_q_ = register_parameter("feature_map_q", eye.clone());
  feature_map_k_ = register_parameter("feature_map_k", eye.clone());
}

void LinearAttentionCoreImpl::ResetToIdentity() {
  at::NoGradGuard no_grad;
  auto eye = at::eye(head_dim_, feature_map_q_.options());  // [D, D]
  feature_map_q_.copy_(eye.expand_as(feature_map_q_));
  feature_map_k_.copy_(eye.expand_as(feature_map_k_));
}

torch::Tensor LinearAttentionCoreImpl::LinearBranch(const torch::Tensor& q, const torch::Tensor& k,
                                                    const torch::Tensor& v) {
  linear_calls_.fetch_add(1);
  return kernels::LinearAttention(q, k, v, feature_map_q_, feature_map_k_, eps_);
}

torch::Tensor LinearAttentionCoreImpl::forward(const torch::Tensor& q, const torch::Tensor& k,
                                               const torch::Tensor& v) {
  return LinearBranch(q, k, v);  // [B, N, heads, head_dim]
}

}  // namespace linvideo::core::attention

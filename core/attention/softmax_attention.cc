#include "core/attention/softmax_attention.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/common/torch_compat.h"

namespace linvideo::core::attention {

torch::Tensor SoftmaxAttention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, double scale, int64_t score_budget_bytes) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "SoftmaxAttention expects [B, N, heads, head_dim] tensors");
  const int64_t b = q.size(0), nq = q.size(1), h = q.size(2), d = q.size(3);
  const int64_t nk = k.size(1);
  if (scale <= 0.0) scale = 1.0 / std::sqrt(static_cast<double>(d));

#if LINVIDEO_TORCH_HAS_SDPA
  if (q.is_cuda()) {
    // [B, H, N, D] layout for SDPA; its flash/efficient kernels never materialise N².
    auto out = at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                                v.transpose(1, 2), {}, 0.0, false, scale);
    return out.transpose(1, 2);
  }
#endif

  auto qh = q.permute({0, 2, 1, 3}).reshape({b * h, nq, d});  // [B*H, Nq, D]
  auto kt = k.permute({0, 2, 3, 1}).reshape({b * h, d, nk});  // [B*H, D, Nk]
  auto vh = v.permute({0, 2, 1, 3}).reshape({b * h, nk, d});  // [B*H, Nk, D]
  const int64_t bytes_per_query_row = b * h * nk * static_cast<int64_t>(sizeof(float));
  const int64_t chunk =
      std::clamp<int64_t>(score_budget_bytes / std::max<int64_t>(1, bytes_per_query_row), 1, nq);

  // Training records autograd history: out= ops are not differentiable, so chunks are
  // concatenated instead of written into a preallocated output.
  const bool needs_grad =
      at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  std::vector<at::Tensor> chunks;
  auto out = needs_grad ? at::Tensor() : at::empty({b * h, nq, d}, q.options());  // [B*H, Nq, D]
  for (int64_t start = 0; start < nq; start += chunk) {
    const int64_t len = std::min(chunk, nq - start);
    auto q_chunk = qh.narrow(1, start, len);           // [B*H, c, D]
    auto scores = at::matmul(q_chunk, kt).mul(scale);  // [B*H, c, Nk]
    auto probs = at::softmax(scores, -1);              // [B*H, c, Nk]
    scores = at::Tensor();
    if (needs_grad) {
      chunks.push_back(at::matmul(probs, vh));  // [B*H, c, D]
    } else {
      auto o_chunk = out.narrow(1, start, len);
      at::matmul_out(o_chunk, probs, vh);  // [B*H, c, D]
    }
  }
  if (needs_grad) out = chunks.size() == 1 ? chunks[0] : at::cat(chunks, 1);
  return out.view({b, h, nq, d}).permute({0, 2, 1, 3});  // [B, Nq, H, D]
}

}  // namespace linvideo::core::attention

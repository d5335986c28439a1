#include "kernels/softmax_attention.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/torch_compat.h"

namespace linvideo::kernels {

torch::Tensor SoftmaxAttention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, double scale, int64_t score_budget_bytes) {
#if LINVIDEO_TORCH_HAS_SDPA
  if (q.is_cuda()) {
    TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
                "SoftmaxAttention expects [B, N, heads, head_dim] tensors");
    if (scale <= 0.0) scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
    // [B, H, N, D] layout for SDPA; its flash/efficient kernels never materialise N².
    auto out = at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                                v.transpose(1, 2), {}, 0.0, false, scale);
    return out.transpose(1, 2);
  }
#endif
  return SoftmaxAttentionChunked(q, k, v, scale, score_budget_bytes);
}

torch::Tensor SoftmaxAttentionChunked(const torch::Tensor& q, const torch::Tensor& k,
                                      const torch::Tensor& v, double scale,
                                      int64_t score_budget_bytes) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "SoftmaxAttentionChunked expects [B, N, heads, head_dim] tensors");
  const int64_t b = q.size(0), nq = q.size(1), h = q.size(2), d = q.size(3);
  const int64_t nk = k.size(1);
  if (scale <= 0.0) scale = 1.0 / std::sqrt(static_cast<double>(d));

  // Pre-scaling q saves a pass over the scores.
  auto qh = (q * scale).permute({0, 2, 1, 3}).reshape({b * h, nq, d});  // [B*H, Nq, D]
  auto kt = k.permute({0, 2, 3, 1}).reshape({b * h, d, nk});            // [B*H, D, Nk]
  auto vh = v.permute({0, 2, 1, 3}).reshape({b * h, nk, d});            // [B*H, Nk, D]
  const int64_t bytes_per_query_row = b * h * nk * static_cast<int64_t>(sizeof(float));
  const int64_t chunk =
      std::clamp<int64_t>(score_budget_bytes / std::max<int64_t>(1, bytes_per_query_row), 1, nq);

  // Training records autograd history: out= and in-place ops are not differentiable, so chunks are
  // computed out of place and concatenated.
  const bool needs_grad =
      at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (needs_grad) {
    std::vector<at::Tensor> chunks;
    for (int64_t start = 0; start < nq; start += chunk) {
      const int64_t len = std::min(chunk, nq - start);
      auto probs = at::softmax(at::matmul(qh.narrow(1, start, len), kt), -1);  // [B*H, c, Nk]
      chunks.push_back(at::matmul(probs, vh));                                 // [B*H, c, D]
    }
    auto out = chunks.size() == 1 ? chunks[0] : at::cat(chunks, 1);
    return out.view({b, h, nq, d}).permute({0, 2, 1, 3});
  }
  // Inference: one score buffer reused by every chunk (fresh 256 MB allocations per chunk would be
  // page-faulted in each time), softmax in place.
  auto out = at::empty({b * h, nq, d}, q.options());             // [B*H, Nq, D]
  auto scores_buf = at::empty({b * h, chunk, nk}, q.options());  // [B*H, c, Nk]
  for (int64_t start = 0; start < nq; start += chunk) {
    const int64_t len = std::min(chunk, nq - start);
    auto scores = scores_buf.view(-1).narrow(0, 0, b * h * len * nk).view({b * h, len, nk});
    at::bmm_out(scores, qh.narrow(1, start, len), kt);  // [B*H, c, Nk]
    at::_softmax_out(scores, scores, -1, false);        // [B*H, c, Nk]
    auto o_chunk = out.narrow(1, start, len);
    at::bmm_out(o_chunk, scores, vh);  // [B*H, c, D]
  }
  return out.view({b, h, nq, d}).permute({0, 2, 1, 3});  // [B, Nq, H, D]
}

}  // namespace linvideo::kernels

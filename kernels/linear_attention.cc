#include "kernels/linear_attention.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <algorithm>
#include <vector>

#include "kernels/linear_attention_fused_cpu.h"

namespace linvideo::kernels {
namespace {

// Accumulation dtype: fp64 stays fp64, everything else (fp32, bf16, fp16) computes in fp32.
c10::ScalarType AccType(const torch::Tensor& x) {
  return x.scalar_type() == c10::kDouble ? c10::kDouble : c10::kFloat;
}

void CheckArgs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
               const torch::Tensor& w_q, const torch::Tensor& w_k) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "linear attention expects q, k, v of shape [B, N, heads, head_dim], got ", q.sizes(),
              ", ", k.sizes(), ", ", v.sizes());
  TORCH_CHECK(q.size(0) == k.size(0) && k.sizes() == v.sizes() && q.size(2) == k.size(2) &&
                  q.size(3) == k.size(3),
              "linear attention: q ", q.sizes(), " and k/v ", k.sizes(), "/", v.sizes(),
              " must share batch, heads and head_dim (k and v the same shape)");
  const int64_t h = q.size(2), d = q.size(3);
  TORCH_CHECK(w_q.dim() == 3 && w_q.size(0) == h && w_q.size(1) == d && w_q.size(2) == d &&
                  w_k.sizes() == w_q.sizes(),
              "linear attention: feature-map weights must be [heads, head_dim, head_dim] = [", h,
              ", ", d, ", ", d, "], got ", w_q.sizes(), " and ", w_k.sizes());
}

// [B, c, H, D] (any strides/dtype) -> [B*H, c, D] contiguous in `acc` (one copy). `to` returns its
// input unchanged when the dtype already matches, whatever memory format is asked for (LibTorch
// 1.13), so `contiguous` makes the copy then.
torch::Tensor ToHeads(const torch::Tensor& x, c10::ScalarType acc) {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), d = x.size(3);
  return x.permute({0, 2, 1, 3})
      .to(acc, /*non_blocking=*/false, /*copy=*/false, c10::MemoryFormat::Contiguous)
      .contiguous()
      .view({b * h, c, d});
}

// [H, D, D] -> [B*H, D, D] in `acc` (a copy only when B > 1).
torch::Tensor ExpandWeights(const torch::Tensor& w, int64_t b, c10::ScalarType acc) {
  auto wa = w.to(acc);
  if (b == 1) return wa.contiguous();
  return wa.unsqueeze(0)
      .expand({b, w.size(0), w.size(1), w.size(2)})
      .reshape({b * w.size(0), w.size(1), w.size(2)});
}

bool NeedsGrad(std::initializer_list<const torch::Tensor*> ts) {
  if (!torch::autograd::GradMode::is_enabled()) return false;
  for (const auto* t : ts) {
    if (t->requires_grad()) return true;
  }
  return false;
}

// Differentiable chunked path: every op is functional so autograd records it. Memory beyond the
// inputs: per-chunk temporaries plus the [B*H, 2D, D] state (the autograd graph keeps the chunks'
// φ, i.e. O(N·d) per head, for backward).
torch::Tensor ChunkedWithGrad(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, const torch::Tensor& w_q,
                              const torch::Tensor& w_k, double eps, int64_t chunk) {
  const int64_t b = q.size(0), nq = q.size(1), nk = k.size(1), h = q.size(2), d = q.size(3);
  const auto acc = AccType(q);
  auto wq = ExpandWeights(w_q, b, acc);  // [B*H, D, D]
  auto wk = ExpandWeights(w_k, b, acc);  // [B*H, D, D]
  torch::Tensor state, ksum;             // [B*H, 2D, D], [B*H, 2D, 1]
  for (int64_t s = 0; s < nk; s += chunk) {
    const int64_t c = std::min(chunk, nk - s);
    auto z = at::bmm(ToHeads(k.narrow(1, s, c), acc), wk);                    // [B*H, c, D]
    auto phi = at::cat({at::softmax(z, -1), at::softmax(z.neg(), -1)}, -1);   // [B*H, c, 2D]
    auto kv = at::bmm(phi.transpose(1, 2), ToHeads(v.narrow(1, s, c), acc));  // [B*H, 2D, D]
    auto ks = phi.sum(1).unsqueeze(-1);                                       // [B*H, 2D, 1]
    state = state.defined() ? state + kv : kv;
    ksum = ksum.defined() ? ksum + ks : ks;
  }
  if (!state.defined()) {  // no keys: numerator and denominator are zero
    state = at::zeros({b * h, 2 * d, d}, q.options().dtype(acc));
    ksum = at::zeros({b * h, 2 * d, 1}, q.options().dtype(acc));
  }
  std::vector<torch::Tensor> outs;
  for (int64_t s = 0; s < nq; s += chunk) {
    const int64_t c = std::min(chunk, nq - s);
    auto z = at::bmm(ToHeads(q.narrow(1, s, c), acc), wq);                   // [B*H, c, D]
    auto phi = at::cat({at::softmax(z, -1), at::softmax(z.neg(), -1)}, -1);  // [B*H, c, 2D]
    auto o = at::bmm(phi, state) / (at::bmm(phi, ksum) + eps);               // [B*H, c, D]
    outs.push_back(o.view({b, h, c, d}).permute({0, 2, 1, 3}));              // [B, c, H, D]
  }
  if (outs.empty()) return at::empty({b, 0, h, d}, v.options());
  return at::cat(outs, 1).to(v.scalar_type());  // [B, Nq, H, D]
}

// φ of one chunk into the preallocated halves phi[0] = softmax(z), phi[1] = softmax(−z)
// (layout [2, B*H, c, D] keeps both halves contiguous, so the out= kernels write in place).
void FeatureMapInto(const torch::Tensor& x_chunk, const torch::Tensor& w, torch::Tensor& xh,
                    torch::Tensor& z, torch::Tensor& phi) {
  const int64_t b = x_chunk.size(0), c = x_chunk.size(1), h = x_chunk.size(2);
  xh.view({b, h, c, x_chunk.size(3)}).copy_(x_chunk.permute({0, 2, 1, 3}));  // [B*H, c, D]
  at::bmm_out(z, xh, w);                                                     // [B*H, c, D]
  auto pos = phi.select(0, 0), neg = phi.select(0, 1);
  at::_softmax_out(pos, z, -1, false);  // [B*H, c, D]
  z.neg_();
  at::_softmax_out(neg, z, -1, false);  // [B*H, c, D]
}

// Inference path: out= kernels into buffers allocated once; nothing of size N·N and nothing
// beyond O(chunk·d) per head except the state and the output.
torch::Tensor ChunkedNoGrad(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const torch::Tensor& w_q, const torch::Tensor& w_k, double eps,
                            int64_t chunk) {
  at::NoGradGuard no_grad;
  const int64_t b = q.size(0), nq = q.size(1), nk = k.size(1), h = q.size(2), d = q.size(3);
  const int64_t bh = b * h;
  const auto acc = AccType(q);
  const auto opts = q.options().dtype(acc);
  auto wq = ExpandWeights(w_q, b, acc);  // [B*H, D, D]
  auto wk = ExpandWeights(w_k, b, acc);  // [B*H, D, D]
  const int64_t cmax = std::max<int64_t>(1, std::min(chunk, std::max(nq, nk)));
  auto xh_buf = at::empty({bh * cmax * d}, opts);
  auto z_buf = at::empty({bh * cmax * d}, opts);
  auto vh_buf = at::empty({bh * cmax * d}, opts);
  auto phi_buf = at::empty({2 * bh * cmax * d}, opts);
  auto o_buf = at::empty({bh * cmax * d}, opts);
  auto den_buf = at::empty({bh * cmax}, opts);
  auto state = at::zeros({2, bh, d, d}, opts);  // [2, B*H, D, D]: φ+ᵀv and φ−ᵀv
  auto ksum = at::zeros({2, bh, d, 1}, opts);   // [2, B*H, D, 1]: Σφ+ and Σφ−

  for (int64_t s = 0; s < nk; s += chunk) {
    const int64_t c = std::min(chunk, nk - s);
    auto xh = xh_buf.narrow(0, 0, bh * c * d).view({bh, c, d});
    auto z = z_buf.narrow(0, 0, bh * c * d).view({bh, c, d});
    auto phi = phi_buf.narrow(0, 0, 2 * bh * c * d).view({2, bh, c, d});
    FeatureMapInto(k.narrow(1, s, c), wk, xh, z, phi);
    auto vh = vh_buf.narrow(0, 0, bh * c * d).view({bh, c, d});
    vh.view({b, h, c, d}).copy_(v.narrow(1, s, c).permute({0, 2, 1, 3}));  // [B*H, c, D]
    for (int64_t half = 0; half < 2; ++half) {
      auto p = phi.select(0, half);                           // [B*H, c, D]
      state.select(0, half).baddbmm_(p.transpose(1, 2), vh);  // [B*H, D, D]
      ksum.select(0, half).add_(p.sum(1).unsqueeze(-1));      // [B*H, D, 1]
    }
  }

  auto out = at::empty({b, nq, h, d}, v.options());  // [B, Nq, H, D]
  for (int64_t s = 0; s < nq; s += chunk) {
    const int64_t c = std::min(chunk, nq - s);
    auto xh = xh_buf.narrow(0, 0, bh * c * d).view({bh, c, d});
    auto z = z_buf.narrow(0, 0, bh * c * d).view({bh, c, d});
    auto phi = phi_buf.narrow(0, 0, 2 * bh * c * d).view({2, bh, c, d});
    FeatureMapInto(q.narrow(1, s, c), wq, xh, z, phi);
    auto o = o_buf.narrow(0, 0, bh * c * d).view({bh, c, d});
    auto den = den_buf.narrow(0, 0, bh * c).view({bh, c, 1});
    at::bmm_out(o, phi.select(0, 0), state.select(0, 0));   // [B*H, c, D]
    o.baddbmm_(phi.select(0, 1), state.select(0, 1));       // [B*H, c, D]
    at::bmm_out(den, phi.select(0, 0), ksum.select(0, 0));  // [B*H, c, 1]
    den.baddbmm_(phi.select(0, 1), ksum.select(0, 1)).add_(eps);
    o.div_(den);
    out.narrow(1, s, c).copy_(o.view({b, h, c, d}).permute({0, 2, 1, 3}));
  }
  return out;
}

}  // namespace

torch::Tensor HedgehogFeatureMap(const torch::Tensor& x, const torch::Tensor& w) {
  TORCH_CHECK(x.dim() == 4 && w.dim() == 3 && w.size(0) == x.size(2) && w.size(1) == x.size(3) &&
                  w.size(2) == x.size(3),
              "HedgehogFeatureMap: x must be [B, N, heads, D] and w [heads, D, D], got ", x.sizes(),
              " and ", w.sizes());
  const auto acc = AccType(x);
  auto z = at::einsum("bnhd,hde->bnhe", {x.to(acc), w.to(acc)});       // [B, N, H, D]
  return at::cat({at::softmax(z, -1), at::softmax(z.neg(), -1)}, -1);  // [B, N, H, 2D]
}

torch::Tensor LinearAttentionReference(const torch::Tensor& q, const torch::Tensor& k,
                                       const torch::Tensor& v, const torch::Tensor& w_q,
                                       const torch::Tensor& w_k, double eps) {
  CheckArgs(q, k, v, w_q, w_k);
  const auto acc = AccType(q);
  auto phi_q = HedgehogFeatureMap(q, w_q);                              // [B, Nq, H, 2D]
  auto phi_k = HedgehogFeatureMap(k, w_k);                              // [B, Nk, H, 2D]
  auto kv = at::einsum("bnhf,bnhd->bhfd", {phi_k, v.to(acc)});          // [B, H, 2D, D]
  auto ksum = phi_k.sum(1);                                             // [B, H, 2D]
  auto num = at::einsum("bnhf,bhfd->bnhd", {phi_q, kv});                // [B, Nq, H, D]
  auto den = at::einsum("bnhf,bhf->bnh", {phi_q, ksum}).unsqueeze(-1);  // [B, Nq, H, 1]
  return (num / (den + eps)).to(v.scalar_type());
}

torch::Tensor LinearAttentionComposite(const torch::Tensor& q, const torch::Tensor& k,
                                       const torch::Tensor& v, const torch::Tensor& w_q,
                                       const torch::Tensor& w_k, double eps, int64_t chunk) {
  CheckArgs(q, k, v, w_q, w_k);
  TORCH_CHECK(chunk > 0, "LinearAttentionComposite: chunk must be positive, got ", chunk);
  if (NeedsGrad({&q, &k, &v, &w_q, &w_k})) return ChunkedWithGrad(q, k, v, w_q, w_k, eps, chunk);
  if (LinearAttentionFusedCpuApplies(q, k, v)) {
    return LinearAttentionFusedCpu(q, k, v, w_q, w_k, eps, chunk);
  }
  return ChunkedNoGrad(q, k, v, w_q, w_k, eps, chunk);
}

bool LinearAttentionUsesFusedKernel(const torch::Tensor& q, const torch::Tensor& k,
                                    const torch::Tensor& v, const torch::Tensor& w_q,
                                    const torch::Tensor& w_k) {
  if (!LinearAttentionFusedCudaCompiled() || !q.is_cuda()) return false;
  const auto dt = q.scalar_type();
  if (dt != c10::kFloat && dt != c10::kBFloat16) return false;
  if (k.scalar_type() != dt || v.scalar_type() != dt) return false;
  if (!k.is_cuda() || !v.is_cuda() || !w_q.is_cuda() || !w_k.is_cuda()) return false;
  if (q.dim() != 4 || (q.size(3) != 64 && q.size(3) != 128)) return false;
  return !NeedsGrad({&q, &k, &v, &w_q, &w_k});
}

const char* LinearAttentionPath(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& v, const torch::Tensor& w_q,
                                const torch::Tensor& w_k) {
  if (!LinearAttentionUsesFusedKernel(q, k, v, w_q, w_k)) return "composite";
  return ResolveLinearAttentionCudaKernel(q, LinearAttentionCudaKernel::kAuto) ==
                 LinearAttentionCudaKernel::kTensorCore
             ? "tensor-core"
             : "cuda-core";
}

torch::Tensor LinearAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, const torch::Tensor& w_q,
                              const torch::Tensor& w_k, double eps) {
  if (LinearAttentionUsesFusedKernel(q, k, v, w_q, w_k)) {
    return LinearAttentionFusedCuda(q, k, v, w_q, w_k, eps);
  }
  return LinearAttentionComposite(q, k, v, w_q, w_k, eps);
}

}  // namespace linvideo::kernels

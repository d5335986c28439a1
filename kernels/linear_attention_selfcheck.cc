#include "kernels/linear_attention_selfcheck.h"

#include <ATen/ATen.h>

#include <cstdio>

#include "kernels/linear_attention.h"

namespace linvideo::kernels {

std::string LinearAttentionParityResult::ToString() const {
  char buf[256];
  std::snprintf(
      buf, sizeof(buf), "B=%lld N=%lld heads=%lld head_dim=%lld %s path=%s max_abs_err=%.3g %s",
      static_cast<long long>(batch), static_cast<long long>(tokens), static_cast<long long>(heads),
      static_cast<long long>(head_dim), dtype == c10::kBFloat16 ? "bf16" : "fp32", path.c_str(),
      max_abs_error, pass ? "PASS" : "FAIL");
  return buf;
}

std::vector<LinearAttentionParityResult> RunLinearAttentionParity(c10::Device device,
                                                                  uint64_t seed) {
  at::NoGradGuard no_grad;
  at::manual_seed(seed);
  struct Case {
    int64_t b, n, h, d;
  };
  // Token counts straddle the kernels' 16-token tiles and the CPU path's 1024-token chunks.
  const Case cases[] = {{1, 1, 1, 64},      {1, 17, 12, 128},  {2, 1000, 3, 64},
                        {1, 1025, 12, 128}, {1, 4099, 2, 128}, {2, 333, 5, 128}};
  std::vector<LinearAttentionParityResult> results;
  for (const auto dtype : {c10::kFloat, c10::kBFloat16}) {
    for (const auto& c : cases) {
      auto opts = at::TensorOptions().device(device).dtype(at::kFloat);
      auto q = at::randn({c.b, c.n, c.h, c.d}, opts).to(dtype);  // [B, N, H, D]
      auto k = at::randn({c.b, c.n, c.h, c.d}, opts).to(dtype);  // [B, N, H, D]
      auto v = at::randn({c.b, c.n, c.h, c.d}, opts).to(dtype);  // [B, N, H, D]
      auto eye = at::eye(c.d, opts).expand({c.h, c.d, c.d});
      auto wq = eye + 0.3 * at::randn({c.h, c.d, c.d}, opts) / std::sqrt(double(c.d));
      auto wk = eye + 0.3 * at::randn({c.h, c.d, c.d}, opts) / std::sqrt(double(c.d));
      LinearAttentionParityResult r;
      r.batch = c.b, r.tokens = c.n, r.heads = c.h, r.head_dim = c.d, r.dtype = dtype;
      r.path = LinearAttentionUsesFusedKernel(q, k, v, wq, wk) ? "fused" : "composite";
      auto out = LinearAttention(q, k, v, wq, wk).to(at::kFloat);
      // Reference in fp32 on the same (already rounded) inputs.
      auto ref =
          LinearAttentionReference(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat), wq, wk);
      const double atol = dtype == c10::kBFloat16 ? 1e-2 : 1e-4;
      const double rtol = dtype == c10::kBFloat16 ? 1e-2 : 1e-3;
      auto diff = (out - ref).abs();
      r.max_abs_error = diff.max().item<double>();
      r.max_excess = (diff - (atol + rtol * ref.abs())).max().item<double>();
      r.pass =
          out.sizes() == ref.sizes() && r.max_excess <= 0.0 && out.isfinite().all().item<bool>();
      results.push_back(r);
    }
  }
  return results;
}

}  // namespace linvideo::kernels

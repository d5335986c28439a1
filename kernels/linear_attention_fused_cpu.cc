// Fused fp32 CPU inference path of Hedgehog linear attention (see linear_attention_fused_cpu.h).
//
// Per (batch, head), keys then queries in chunks of rows:
//   keys:    z = k_h·W̃k (GEMM reading k in place, row stride H·D) -> φ rows (one fused pass:
//            max/min, both exponentials, both normalisations) -> S += φᵀ·v_h (GEMM reading v in
//            place), Σφ via a column sum.
//   queries: z = q_h·W̃q -> φ rows, each divided by its denominator φ·Σφ + eps in the same pass ->
//            out_h = φ·S (GEMM writing the output in place, row stride H·D).
// So the only passes over the inputs are the GEMMs themselves: no head-major copies of q, k, v or
// the output, no separate softmax/neg/divide passes, and the denominator costs no GEMV.
// Memory beyond inputs and output: z [chunk, D] + φ [chunk, 2D] + S [2D, D] + Σφ [2D].

#include "kernels/linear_attention_fused_cpu.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/cpu_math.h"

namespace linvideo::kernels {
namespace {

using cpu_math::ExpNonPositive;

// φ of `rows` rows of z [rows, d] into phi [rows, 2d]: phi[:, :d] = softmax(z), phi[:, d:] =
// softmax(−z). With `ksum` (2d values) each row is further divided by φ·ksum + eps (queries).
// Cloned for AVX-512 / AVX2 / baseline and picked at load time, so the binary stays portable.
__attribute__((target_clones("avx512f", "arch=haswell", "default"))) void HedgehogRows(
    const float* __restrict z, int64_t rows, int64_t d, float* __restrict phi,
    const float* __restrict ksum, float eps, float* __restrict colsum) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* zr = z + r * d;
    float* pos = phi + r * 2 * d;
    float* neg = pos + d;
    // Row max/min with kLanes independent lanes (an elementwise loop the compiler turns into
    // vector max/min; a scalar reduction would not vectorise without -ffast-math).
    constexpr int64_t kLanes = 16;
    float hi, lo;
    if (d % kLanes == 0) {
      float hv[kLanes], lv[kLanes];
      for (int64_t l = 0; l < kLanes; ++l) hv[l] = lv[l] = zr[l];
      for (int64_t j = kLanes; j < d; j += kLanes) {
        for (int64_t l = 0; l < kLanes; ++l) {
          const float x = zr[j + l];
          hv[l] = x > hv[l] ? x : hv[l];
          lv[l] = x < lv[l] ? x : lv[l];
        }
      }
      hi = hv[0];
      lo = lv[0];
      for (int64_t l = 1; l < kLanes; ++l) {
        hi = std::max(hi, hv[l]);
        lo = std::min(lo, lv[l]);
      }
    } else {
      hi = lo = zr[0];
      for (int64_t j = 1; j < d; ++j) {
        hi = std::max(hi, zr[j]);
        lo = std::min(lo, zr[j]);
      }
    }
    float sp = 0.0f, sn = 0.0f;
#pragma omp simd reduction(+ : sp, sn)
    for (int64_t j = 0; j < d; ++j) {
      const float a = ExpNonPositive(zr[j] - hi);  // softmax(z) numerator
      const float b = ExpNonPositive(lo - zr[j]);  // softmax(−z) numerator
      pos[j] = a;
      neg[j] = b;
      sp += a;
      sn += b;
    }
    float ip = 1.0f / sp, in = 1.0f / sn;
    if (ksum != nullptr) {
      float dp = 0.0f, dn = 0.0f;
#pragma omp simd reduction(+ : dp, dn)
      for (int64_t j = 0; j < d; ++j) {
        dp += pos[j] * ksum[j];
        dn += neg[j] * ksum[d + j];
      }
      const float inv_den = 1.0f / (dp * ip + dn * in + eps);
      ip *= inv_den;
      in *= inv_den;
    }
    if (colsum != nullptr) {
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) {
        pos[j] *= ip;
        neg[j] *= in;
        colsum[j] += pos[j];
        colsum[d + j] += neg[j];
      }
    } else {
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) {
        pos[j] *= ip;
        neg[j] *= in;
      }
    }
  }
}

// HedgehogRows over all rows of z. Called inside the per-head parallel region, so it runs on the
// calling thread, which owns `colsum` (nullable: Σφ accumulated over the rows).
void FeatureMap(const at::Tensor& z, at::Tensor& phi, const float* ksum, float eps, float* colsum) {
  const int64_t rows = z.size(0), d = z.size(1);
  const float* zp = z.data_ptr<float>();
  float* pp = phi.data_ptr<float>();
  HedgehogRows(zp, rows, d, pp, ksum, eps, colsum);
}

}  // namespace

bool LinearAttentionFusedCpuApplies(const torch::Tensor& q, const torch::Tensor& k,
                                    const torch::Tensor& v) {
  for (const auto* t : {&q, &k, &v}) {
    if (!t->device().is_cpu() || t->scalar_type() != c10::kFloat || t->stride(3) != 1) {
      return false;
    }
  }
  return true;
}

torch::Tensor LinearAttentionFusedCpu(const torch::Tensor& q, const torch::Tensor& k,
                                      const torch::Tensor& v, const torch::Tensor& w_q,
                                      const torch::Tensor& w_k, double eps, int64_t chunk) {
  at::NoGradGuard no_grad;
  const int64_t b = q.size(0), nq = q.size(1), nk = k.size(1), h = q.size(2), d = q.size(3);
  const auto opts = q.options().dtype(c10::kFloat);
  const at::Tensor wq = w_q.to(c10::kFloat).contiguous();  // [H, D, D]
  const at::Tensor wk = w_k.to(c10::kFloat).contiguous();
  const int64_t cmax = std::max<int64_t>(1, std::min(chunk, std::max(nq, nk)));
  at::Tensor out = at::empty({b, nq, h, d}, opts);  // [B, Nq, H, D]
  const float feps = static_cast<float>(eps);
  // One (batch, head) per task. Inside a parallel region LibTorch runs nested parallel_for
  // inline and BLIS (OpenMP) gets a team of one, so each thread runs whole heads with
  // single-threaded GEMMs: no synchronisation inside the small per-chunk GEMMs.
  // Worker threads take the caller's thread-local state (inference / no-grad mode), or writing
  // into `out` (an inference tensor under InferenceMode) would be rejected there.
  const at::ThreadLocalState caller_state;
  at::parallel_for(0, b * h, 1, [&](int64_t begin, int64_t end) {
    at::ThreadLocalStateGuard state_guard(caller_state);
    at::Tensor z_buf = at::empty({cmax, d}, opts);
    at::Tensor phi_buf = at::empty({cmax, 2 * d}, opts);
    at::Tensor state = at::empty({2 * d, d}, opts);  // [2D, D]: [φ+ | φ−]ᵀ·v
    at::Tensor ksum = at::empty({2 * d}, opts);      // [2D]: Σφ
    for (int64_t task = begin; task < end; ++task) {
      const int64_t bi = task / h, hi = task % h;
      state.zero_();
      ksum.zero_();
      const at::Tensor kh = k.select(0, bi).select(1, hi);  // [Nk, D], row stride H·D
      const at::Tensor vh = v.select(0, bi).select(1, hi);  // [Nk, D]
      for (int64_t s = 0; s < nk; s += chunk) {
        const int64_t c = std::min(chunk, nk - s);
        at::Tensor z = z_buf.narrow(0, 0, c);
        at::Tensor phi = phi_buf.narrow(0, 0, c);
        at::mm_out(z, kh.narrow(0, s, c), wk.select(0, hi));        // [c, D]
        FeatureMap(z, phi, nullptr, feps, ksum.data_ptr<float>());  // [c, 2D], Σφ
        state.addmm_(phi.t(), vh.narrow(0, s, c));                  // [2D, D]
      }
      const at::Tensor qh = q.select(0, bi).select(1, hi);  // [Nq, D]
      at::Tensor oh = out.select(0, bi).select(1, hi);      // [Nq, D], row stride H·D
      for (int64_t s = 0; s < nq; s += chunk) {
        const int64_t c = std::min(chunk, nq - s);
        at::Tensor z = z_buf.narrow(0, 0, c);
        at::Tensor phi = phi_buf.narrow(0, 0, c);
        at::mm_out(z, qh.narrow(0, s, c), wq.select(0, hi));        // [c, D]
        FeatureMap(z, phi, ksum.data_ptr<float>(), feps, nullptr);  // [c, 2D], rows / denominator
        at::Tensor o = oh.narrow(0, s, c);
        at::mm_out(o, phi, state);  // [c, D] into the output
      }
    }
  });
  return out.to(v.scalar_type());
}

}  // namespace linvideo::kernels

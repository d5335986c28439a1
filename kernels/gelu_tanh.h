#pragma once
// GELU with the tanh approximation (the Wan DiT's FFN and text-embedding activation):
//   gelu(x) = 0.5·x·(1 + tanh(u)),  u = sqrt(2/π)·(x + 0.044715·x³)
//
// LibTorch's CPU kernel spends most of a DiT FFN's non-GEMM time here: on [4608, 1024] (one
// training batch of the recipe DiT), 2 threads, it takes 7.5 ms forward in fp32, and 11 ms
// forward + 18 ms backward in bf16, where it rounds to bf16 along the way (43% of its bf16 results
// differ from its own fp32 result rounded once; max error 0.7% of |x|). This one is
// a single vectorised pass in fp32 arithmetic whatever the storage dtype (1.0 / 2.8 ms forward,
// 1.2 / 2.8 ms backward in fp32 / bf16: 4-7.5x). It evaluates 0.5·(1 + tanh(u)) as
// sigmoid(2u) = 1 / (1 + e^(−2u)) with e^(−2|u|) (no overflow, no cancellation in the tail) and
// rounds once on store. Accuracy against the formula in double: ~4 ulp for small |u|; in the
// tail, where the result is ~x·e^(−2|u|), rounding u itself costs a few ulp times |2u| (as it
// does for any fp32 evaluation); results below ~1e-36 are 0. bf16 results are the fp32 results
// rounded to nearest even. Backward: grad · (s + 2·x·s·(1 − s)·u'), s = sigmoid(2u),
// u' = sqrt(2/π)·(1 + 3·0.044715·x²), with s·(1 − s) = e·r² (r = 1 / (1 + e)) so it does not
// cancel for large |x|. No FMA contraction (-ffp-contract=off), so the AVX-512, AVX2 and baseline
// clones perform the same IEEE operations (only the AVX-512 one runs on the development machine).
//
// Handles CPU fp32 / bf16 tensors (any layout: non-contiguous inputs are made contiguous). Other
// devices and dtypes fall back to at::gelu(x, "tanh"), so callers need no checks. Differentiable;
// double backward (create_graph) goes through LibTorch's own gelu_backward. Stateless, thread-safe.

#include <torch/types.h>

namespace linvideo::kernels {

// gelu(x); records autograd when x requires grad and grad mode is on.
torch::Tensor GeluTanh(const torch::Tensor& x);

// In place; for inference only (x must not require grad). Returns x.
torch::Tensor& GeluTanh_(torch::Tensor& x);

// grad · gelu'(x) (grad and x of the same shape), as at::gelu_backward(grad, x, "tanh").
torch::Tensor GeluTanhBackward(const torch::Tensor& grad, const torch::Tensor& x);

// True when GeluTanh(x) runs this file's CPU kernel rather than the LibTorch fallback.
bool GeluTanhCpuApplies(const torch::Tensor& x);

}  // namespace linvideo::kernels

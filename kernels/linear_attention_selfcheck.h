#pragma once
// Parity self-check of LinearAttention() (the fused CUDA kernels where dispatch picks them) against
// LinearAttentionReference on one device, over a fixed grid of token counts, head counts, head dims
// and dtypes. Shared by tests/kernels/linear_attention_gpu_test.cc and `linvideo-attention-bench
// --check`, which runs on GPU machines without GoogleTest. Stateless; not for concurrent use on one
// device only because it allocates freely.

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

namespace linvideo::kernels {

struct LinearAttentionParityResult {
  int64_t batch = 0, tokens = 0, heads = 0, head_dim = 0;
  c10::ScalarType dtype = c10::kFloat;
  std::string path;          // "tensor-core", "cuda-core" or "composite" (LinearAttentionPath)
  double max_abs_error = 0;  // max |out − reference|
  double max_excess = 0;     // max(|out − ref| − (atol + rtol·|ref|)); <= 0 passes
  double rel_error = 0;  // ‖out − ref‖₂ / ‖ref‖₂: ≤ 1e-4 (fp32) / 5e-3 (bf16) passes
  bool pass = false;     // both bounds hold and every value is finite
  std::string ToString() const;
};

// Runs every case on `device` (CPU works too, exercising the composite path) through
// LinearAttention(); where that takes the tensor-core kernel, each case is also run through the
// CUDA-core kernel (its fallback) as a row of its own.
std::vector<LinearAttentionParityResult> RunLinearAttentionParity(c10::Device device,
                                                                  uint64_t seed = 1);

}  // namespace linvideo::kernels

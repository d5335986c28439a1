#pragma once
// Parity self-check of LinearAttention() (the fused CUDA kernel where dispatch picks it) against
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
  std::string path;          // "fused" or "composite"
  double max_abs_error = 0;  // max |out − reference|
  double max_excess = 0;     // max(|out − ref| − (atol + rtol·|ref|)); <= 0 passes
  bool pass = false;
  std::string ToString() const;
};

// Runs every case on `device` (CPU works too, exercising the composite path).
std::vector<LinearAttentionParityResult> RunLinearAttentionParity(c10::Device device,
                                                                  uint64_t seed = 1);

}  // namespace linvideo::kernels

#pragma once
// Raw-pointer interface of the fused RMSNorm + RoPE kernel (rms_norm_rope_cuda.cu): plain CUDA
// C++, no LibTorch types, like linear_attention_fused_cuda.h. LibTorch callers use
// RmsNormRopeFused() in rms_norm_rope.h.

#include <cstdint>

namespace linvideo::kernels::cuda {

struct RmsNormRopeArgs {
  const void* x = nullptr;        // [rows, channels] (rows = B·N), contiguous, bf16 or fp32
  const float* weight = nullptr;  // [channels] fp32
  const float* cos = nullptr;     // [tokens, half] fp32 (half = head_dim / 2), contiguous
  const float* sin = nullptr;     // [tokens, half] fp32
  void* out = nullptr;            // [rows, channels] = [B, N, H, head_dim], same dtype as x
  int64_t rows = 0, tokens = 0;   // row r is token r % tokens
  int64_t channels = 0, head_dim = 0;
  float eps = 1e-6f;
  bool bf16 = true;  // x and out bf16 (else fp32)
};

// Enqueues y = RoPE(RMSNorm(x) · weight) on `stream` (a cudaStream_t), all arithmetic in fp32, the
// result rounded once to the output type. Returns the cudaError_t as int (0 = success);
// cudaErrorInvalidValue for an odd head_dim or channels not a multiple of it.
int LaunchRmsNormRope(const RmsNormRopeArgs& args, void* stream);
// cudaGetErrorString of a code LaunchRmsNormRope returned.
const char* RmsNormRopeErrorString(int error);

}  // namespace linvideo::kernels::cuda

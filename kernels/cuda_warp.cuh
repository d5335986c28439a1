#pragma once
// Shared by the CUDA kernels: warp-wide reductions (all 32 lanes take part and get the result)
// and the launch prologue of the two linear-attention kernels.

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/linear_attention_fused_cuda.h"

namespace linvideo::kernels::cuda {

__device__ __forceinline__ float WarpMax(float x) {
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float WarpMin(float x) {
  for (int o = 16; o > 0; o >>= 1) x = fminf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float WarpSum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// Zeroes the Σφ(k)ᵀv state ([B·H, 2D, D] fp32) and Σφ(k) ([B·H, 2D]) that pass 1 accumulates into
// with atomics, and checks the grid: cudaSuccess with `*launch` false when there is nothing to
// run (no heads), cudaErrorInvalidConfiguration beyond 65,535 heads (the grid's y extent).
template <int D>
cudaError_t PrepareLinearAttention(const LinearAttentionArgs& a, cudaStream_t stream,
                                   bool* launch) {
  *launch = false;
  const int64_t bh = a.batch * a.heads;
  cudaError_t err = cudaMemsetAsync(a.state, 0, sizeof(float) * bh * 2 * D * D, stream);
  if (err != cudaSuccess) return err;
  err = cudaMemsetAsync(a.ksum, 0, sizeof(float) * bh * 2 * D, stream);
  if (err != cudaSuccess) return err;
  if (bh == 0) return cudaSuccess;
  if (bh > 65535) return cudaErrorInvalidConfiguration;
  *launch = true;
  return cudaSuccess;
}

}  // namespace linvideo::kernels::cuda

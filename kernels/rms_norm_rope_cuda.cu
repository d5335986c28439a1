// Fused RMSNorm + RoPE of the Wan self-attention's queries and keys (see rms_norm_rope.h). One
// block per row (token of one batch element): the sum of squares over the row's channels, then
// each thread rotates whole (even, odd) pairs, which never straddle a head since head_dim is even.
// Replaces ~9 passes over an fp32 copy of the row (cast, norm, two products, four RoPE products,
// cast back) with one read and one write in the input's type.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/rms_norm_rope_cuda.h"

namespace linvideo::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float Load(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ __forceinline__ float Load(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ void Store(__nv_bfloat16* p, int64_t i, float v) {
  p[i] = __float2bfloat16(v);
}
__device__ __forceinline__ void Store(float* p, int64_t i, float v) { p[i] = v; }

template <typename T>
__global__ void __launch_bounds__(kThreads)
    RmsNormRopeKernel(const T* __restrict__ x, const float* __restrict__ weight,
                      const float* __restrict__ cos, const float* __restrict__ sin,
                      T* __restrict__ out, int64_t tokens, int64_t channels, int64_t half,
                      float eps) {
  const int64_t row = blockIdx.x;
  const T* xr = x + row * channels;
  T* yr = out + row * channels;
  const int64_t pairs = channels / 2;

  float sum = 0.f;
  for (int64_t p = threadIdx.x; p < pairs; p += kThreads) {
    const float a = Load(xr, 2 * p), b = Load(xr, 2 * p + 1);
    sum += a * a + b * b;
  }
  // Block sum: warps, then the first warp over the warps' partial sums.
  __shared__ float partial[kThreads / 32];
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_down_sync(0xffffffffu, sum, offset);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) partial[warp] = sum;
  __syncthreads();
  __shared__ float inv_rms;
  if (warp == 0) {
    float s = lane < kThreads / 32 ? partial[lane] : 0.f;
    for (int offset = 16; offset > 0; offset /= 2) s += __shfl_down_sync(0xffffffffu, s, offset);
    if (lane == 0) inv_rms = rsqrtf(s / static_cast<float>(channels) + eps);
  }
  __syncthreads();
  const float inv = inv_rms;

  const int64_t t = row % tokens;
  const float* cr = cos + t * half;
  const float* sr = sin + t * half;
  for (int64_t p = threadIdx.x; p < pairs; p += kThreads) {
    const float a = Load(xr, 2 * p) * inv * weight[2 * p];
    const float b = Load(xr, 2 * p + 1) * inv * weight[2 * p + 1];
    const int64_t j = p % half;  // pair within its head
    const float c = cr[j], s = sr[j];
    Store(yr, 2 * p, a * c - b * s);
    Store(yr, 2 * p + 1, a * s + b * c);
  }
}

}  // namespace

int LaunchRmsNormRope(const RmsNormRopeArgs& a, void* stream) {
  if (a.head_dim <= 0 || a.head_dim % 2 != 0 || a.channels % a.head_dim != 0 || a.tokens <= 0 ||
      a.rows % a.tokens != 0 || a.rows > 0x7fffffff) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  if (a.rows == 0) return 0;
  const auto s = static_cast<cudaStream_t>(stream);
  const dim3 grid(static_cast<unsigned>(a.rows));
  if (a.bf16) {
    RmsNormRopeKernel<<<grid, kThreads, 0, s>>>(static_cast<const __nv_bfloat16*>(a.x), a.weight,
                                                a.cos, a.sin, static_cast<__nv_bfloat16*>(a.out),
                                                a.tokens, a.channels, a.head_dim / 2, a.eps);
  } else {
    RmsNormRopeKernel<<<grid, kThreads, 0, s>>>(static_cast<const float*>(a.x), a.weight, a.cos,
                                                a.sin, static_cast<float*>(a.out), a.tokens,
                                                a.channels, a.head_dim / 2, a.eps);
  }
  return static_cast<int>(cudaGetLastError());
}

const char* RmsNormRopeErrorString(int error) {
  return cudaGetErrorString(static_cast<cudaError_t>(error));
}

}  // namespace linvideo::kernels::cuda

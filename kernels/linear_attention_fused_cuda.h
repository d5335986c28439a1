#pragma once
// Raw-pointer interface of the fused CUDA linear attention (linear_attention_fused_cuda.cu). It
// uses no LibTorch or CUDA types, so the .cu compiles with nvcc alone (also where LibTorch has no
// CUDA) and C++ callers need no CUDA headers. LibTorch callers use LinearAttentionFusedCuda() in
// linear_attention.h, which allocates the workspace and passes the current stream.
//
// Algorithm (per batch·head, φ(x) = [softmax(x·W̃), softmax(−x·W̃)]):
//   pass 1, grid (token splits, B·H): φ(k) for tiles of 16 tokens in shared memory, accumulated
//   into
//           per-thread fp32 registers Σφ(k)ᵀv and Σφ(k), then atomically added to the workspace;
//   pass 2, grid (token tiles, B·H): φ(q) per tile, o = φ(q)·S / (φ(q)·Σφ(k) + eps).
// φ never reaches global memory. Inputs fp32 or bf16; all arithmetic in fp32.

#include <cstdint>

namespace linvideo::kernels::cuda {

enum class ElementType { kFloat32, kBFloat16 };

struct LinearAttentionArgs {
  const void* q = nullptr;     // [B, Nq, H, D], contiguous, `dtype`
  const void* k = nullptr;     // [B, Nk, H, D], contiguous, `dtype`
  const void* v = nullptr;     // [B, Nk, H, D], contiguous, `dtype`
  const float* w_q = nullptr;  // [H, D, D] fp32, contiguous
  const float* w_k = nullptr;  // [H, D, D] fp32, contiguous
  void* out = nullptr;         // [B, Nq, H, D], contiguous, `dtype`
  float* state = nullptr;      // workspace [B·H, 2D, D] fp32 (zeroed by the launch)
  float* ksum = nullptr;       // workspace [B·H, 2D] fp32 (zeroed by the launch)
  int64_t batch = 0, nq = 0, nk = 0, heads = 0, head_dim = 0;
  float eps = 1e-6f;
  ElementType dtype = ElementType::kFloat32;
  int num_sms = 1;  // streaming multiprocessors of the device (sizes the token split of pass 1)
};

// True for the head_dim values the kernel is instantiated for (64, 128).
bool LinearAttentionCudaSupportsHeadDim(int64_t head_dim);

// Enqueues both passes on `stream` (a cudaStream_t). Returns the cudaError_t as int (0 = success).
// Asynchronous: the caller keeps all buffers alive until the stream has run.
int LaunchLinearAttention(const LinearAttentionArgs& args, void* stream);

// The tensor-core kernel (linear_attention_tc_cuda.cu): bf16 only, head_dim 64 or 128, devices of
// compute capability 8.0 or later with LinearAttentionTensorCoreSharedBytes(head_dim) of opt-in
// shared memory per block, q/k/v/out 16-byte aligned. Same arguments, workspace and
// asynchrony as LaunchLinearAttention; returns cudaErrorInvalidValue for an fp32 or other-D call.
// All three products (x·W̃ of the feature map, Σφ(k)ᵀv, φ(q)·S) run as bf16 MMAs with fp32
// accumulation; W̃ is split into two bf16 parts (hi + lo) so the feature map's logits keep fp32
// accuracy; S is rounded to bf16 once for pass 2; softmax, Σφ and the normalisation are fp32.
int LaunchLinearAttentionTensorCore(const LinearAttentionArgs& args, void* stream);

// Dynamic shared memory one block of the tensor-core kernel needs for `head_dim` (-1 for an
// unsupported one): the device's opt-in limit per block must be at least this.
int64_t LinearAttentionTensorCoreSharedBytes(int64_t head_dim);

}  // namespace linvideo::kernels::cuda

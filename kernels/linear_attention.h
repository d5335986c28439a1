#pragma once
// Linear attention with the Hedgehog feature map (LinVideo), in four implementations:
//   - LinearAttentionReference: plain LibTorch ops, materialises φ for all tokens; ground truth.
//   - LinearAttentionComposite: LibTorch ops chunked over tokens with batched per-head matmuls, any
//     device; beyond its inputs it holds O(chunk·d) per head plus the [heads, 2d, d] KV state.
//     Differentiable. For fp32 CPU inference it runs the fused CPU kernel instead.
//   - LinearAttentionFusedCpu (linear_attention_fused_cpu.cc): vectorised fp32 CPU inference
//   kernel.
//   - LinearAttentionFusedCuda, two CUDA kernels, inference only (no autograd), fused φ +
//     KV-state + normalised output with fp32 accumulation:
//       tensor-core (linear_attention_tc_cuda.cu): bf16, every product an MMA; the default for
//       bf16 on compute capability >= 8.0 with enough shared memory
//       (LinearAttentionTensorCoreSupported); cuda-core (linear_attention_fused_cuda.cu): fp32 /
//       bf16 on CUDA cores; fp32, older devices, and the fallback
//       (LINVIDEO_LINEAR_ATTENTION_KERNEL=cuda-core).
// LinearAttention() dispatches between them.
//
// Shapes: q, k, v [B, N, H, D]; feature-map weights w_q, w_k [H, D, D] (fp32 or the input dtype);
// output [B, N, H, D] in v's dtype.
//   φ(x)  = [softmax(x·W̃), softmax(−x·W̃)] over the feature dim, per head  -> [.., 2D]
//   o_i   = φ(q_i)·(Σ_j φ(k_j)ᵀ v_j) / (φ(q_i)·Σ_j φ(k_j) + eps)
// All functions are stateless and thread-safe.

#include <torch/types.h>

#include <cstdint>

namespace linvideo::kernels {

inline constexpr double kLinearAttentionEps = 1e-6;
// Tokens per chunk of the composite and fused CPU paths: large enough for matmul efficiency, small
// enough for caches.
inline constexpr int64_t kLinearAttentionChunk = 1024;

// x: [B, N, H, D], w: [H, D, D] -> φ(x): [B, N, H, 2D], computed in fp32 for reduced-precision
// inputs (returned in x's dtype's promotion with w).
torch::Tensor HedgehogFeatureMap(const torch::Tensor& x, const torch::Tensor& w);

// Ground truth: materialises φ(q), φ(k) and computes the formula above in fp32 (fp64 for fp64).
torch::Tensor LinearAttentionReference(const torch::Tensor& q, const torch::Tensor& k,
                                       const torch::Tensor& v, const torch::Tensor& w_q,
                                       const torch::Tensor& w_k, double eps = kLinearAttentionEps);

// Composite path (any device; used for CUDA tensors when autograd needs the graph or the fused
// kernel is not compiled in). Accumulates in fp32 (fp64 for fp64 inputs).
torch::Tensor LinearAttentionComposite(const torch::Tensor& q, const torch::Tensor& k,
                                       const torch::Tensor& v, const torch::Tensor& w_q,
                                       const torch::Tensor& w_k, double eps = kLinearAttentionEps,
                                       int64_t chunk = kLinearAttentionChunk);

// True when this build linked the fused CUDA kernel (LibTorch with CUDA + nvcc found).
bool LinearAttentionFusedCudaCompiled();

// Which fused CUDA kernel runs. kAuto: the tensor-core kernel for bf16 where
// LinearAttentionTensorCoreSupported, the CUDA-core kernel otherwise; the environment variable
// LINVIDEO_LINEAR_ATTENTION_KERNEL=cuda-core (allowed: auto, cuda-core; read once per process)
// makes kAuto the CUDA-core kernel, so an operator can fall back without a rebuild.
enum class LinearAttentionCudaKernel { kAuto, kTensorCore, kCudaCore };

// True when this build has the tensor-core kernel, head_dim is 64 or 128, and `device` is a CUDA
// device of compute capability >= 8.0 (bf16 MMA) whose shared memory per block holds the kernel's
// tiles at that head_dim (D = 128 needs 220 KB: H100 / H200 / B200, not A100 or consumer parts,
// which take the CUDA-core kernel).
bool LinearAttentionTensorCoreSupported(const c10::Device& device, int64_t head_dim);

// The kernel `requested` resolves to for these inputs (never kAuto). Throws c10::Error, naming
// the allowed values, for an invalid LINVIDEO_LINEAR_ATTENTION_KERNEL.
LinearAttentionCudaKernel ResolveLinearAttentionCudaKernel(const torch::Tensor& q,
                                                           LinearAttentionCudaKernel requested);

// Fused CUDA kernel. Requires LinearAttentionFusedCudaCompiled(), CUDA tensors of dtype fp32 or
// bf16, and D in {64, 128}; kTensorCore also bf16 and LinearAttentionTensorCoreSupported; throws
// c10::Error otherwise. Inference only: the result has no grad_fn.
torch::Tensor LinearAttentionFusedCuda(
    const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
    const torch::Tensor& w_q, const torch::Tensor& w_k, double eps = kLinearAttentionEps,
    LinearAttentionCudaKernel kernel = LinearAttentionCudaKernel::kAuto);

// True when LinearAttention() would take the fused kernel for these arguments: CUDA tensors,
// kernel compiled, supported dtype / head_dim, and no gradient required by any input.
bool LinearAttentionUsesFusedKernel(const torch::Tensor& q, const torch::Tensor& k,
                                    const torch::Tensor& v, const torch::Tensor& w_q,
                                    const torch::Tensor& w_k);

// What LinearAttention() runs for these arguments: "tensor-core", "cuda-core" or "composite".
const char* LinearAttentionPath(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& v, const torch::Tensor& w_q,
                                const torch::Tensor& w_k);

// Dispatch: fused CUDA kernel when LinearAttentionUsesFusedKernel(), else
// LinearAttentionComposite (which takes the fused CPU kernel where it applies).
torch::Tensor LinearAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, const torch::Tensor& w_q,
                              const torch::Tensor& w_k, double eps = kLinearAttentionEps);

}  // namespace linvideo::kernels

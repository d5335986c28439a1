// LibTorch glue of the fused CUDA kernel: validation, workspace, stream. Compiled into every build;
// the CUDA part only where CMake linked the kernel (LINVIDEO_KERNELS_CUDA, see
// kernels/CMakeLists.txt).

#include <ATen/ATen.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "kernels/linear_attention.h"

#if defined(LINVIDEO_KERNELS_CUDA)
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>

#include "kernels/linear_attention_fused_cuda.h"
#endif

namespace linvideo::kernels {
namespace {

// LINVIDEO_LINEAR_ATTENTION_KERNEL, read once: "" or "auto" -> kAuto, "cuda-core" -> kCudaCore;
// anything else is reported (with the allowed values) by every dispatch that consults it.
struct KernelOverride {
  LinearAttentionCudaKernel kernel = LinearAttentionCudaKernel::kAuto;
  std::string error;
};

const KernelOverride& EnvironmentOverride() {
  static const KernelOverride parsed = [] {
    KernelOverride o;
    const char* raw = std::getenv("LINVIDEO_LINEAR_ATTENTION_KERNEL");
    const std::string value = raw == nullptr ? "" : raw;
    if (value == "cuda-core") {
      o.kernel = LinearAttentionCudaKernel::kCudaCore;
    } else if (!value.empty() && value != "auto") {
      o.error = "LINVIDEO_LINEAR_ATTENTION_KERNEL='" + value +
                "' is not a linear-attention kernel; allowed: auto (tensor cores for bf16 on "
                "compute capability >= 8.0) or cuda-core (the CUDA-core kernel everywhere)";
    }
    return o;
  }();
  return parsed;
}

// Whether the tensor-core kernel can run these inputs: bf16 [B, N, H, D] on a device that
// supports it at this head_dim.
bool TensorCoreApplies(const torch::Tensor& q) {
  return q.scalar_type() == c10::kBFloat16 && q.dim() == 4 &&
         LinearAttentionTensorCoreSupported(q.device(), q.size(3));
}

#if defined(LINVIDEO_KERNELS_CUDA)
// The tensor-core kernel reads and writes 16 bytes at a time: a contiguous tensor whose storage
// offset breaks that alignment is copied into a fresh allocation.
torch::Tensor Aligned16(torch::Tensor t) {
  return reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 == 0 ? t : t.clone();
}
#endif

}  // namespace

bool LinearAttentionFusedCudaCompiled() {
#if defined(LINVIDEO_KERNELS_CUDA)
  return true;
#else
  return false;
#endif
}

bool LinearAttentionTensorCoreSupported(const c10::Device& device, int64_t head_dim) {
#if defined(LINVIDEO_KERNELS_CUDA)
  const int64_t shared = cuda::LinearAttentionTensorCoreSharedBytes(head_dim);
  if (!device.is_cuda() || shared < 0) return false;
  const c10::DeviceIndex index = device.has_index() ? device.index() : c10::cuda::current_device();
  const cudaDeviceProp* prop = at::cuda::getDeviceProperties(index);
  return prop->major >= 8 && static_cast<int64_t>(prop->sharedMemPerBlockOptin) >= shared;
#else
  (void)device, (void)head_dim;
  return false;
#endif
}

LinearAttentionCudaKernel ResolveLinearAttentionCudaKernel(const torch::Tensor& q,
                                                           LinearAttentionCudaKernel requested) {
  if (requested != LinearAttentionCudaKernel::kAuto) return requested;
  const auto& env = EnvironmentOverride();
  TORCH_CHECK(env.error.empty(), env.error);
  if (env.kernel != LinearAttentionCudaKernel::kAuto) return env.kernel;
  return TensorCoreApplies(q) ? LinearAttentionCudaKernel::kTensorCore
                              : LinearAttentionCudaKernel::kCudaCore;
}

torch::Tensor LinearAttentionFusedCuda(const torch::Tensor& q, const torch::Tensor& k,
                                       const torch::Tensor& v, const torch::Tensor& w_q,
                                       const torch::Tensor& w_k, double eps,
                                       LinearAttentionCudaKernel kernel) {
#if defined(LINVIDEO_KERNELS_CUDA)
  TORCH_CHECK(q.is_cuda() && k.is_cuda() && v.is_cuda() && w_q.is_cuda() && w_k.is_cuda(),
              "LinearAttentionFusedCuda: all tensors must be on a CUDA device");
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.sizes() == k.sizes() && q.size(0) == k.size(0) &&
                  q.size(2) == k.size(2) && q.size(3) == k.size(3),
              "LinearAttentionFusedCuda: q [B, Nq, H, D] and k = v [B, Nk, H, D] expected, got ",
              q.sizes(), ", ", k.sizes(), ", ", v.sizes());
  const auto dt = q.scalar_type();
  TORCH_CHECK(
      (dt == c10::kFloat || dt == c10::kBFloat16) && k.scalar_type() == dt && v.scalar_type() == dt,
      "LinearAttentionFusedCuda: q, k, v must all be float32 or all bfloat16, got ", dt, ", ",
      k.scalar_type(), ", ", v.scalar_type());
  const int64_t b = q.size(0), h = q.size(2), d = q.size(3);
  TORCH_CHECK(cuda::LinearAttentionCudaSupportsHeadDim(d),
              "LinearAttentionFusedCuda: head_dim must be 64 or 128, got ", d);
  TORCH_CHECK(w_q.dim() == 3 && w_q.size(0) == h && w_q.size(1) == d && w_q.size(2) == d &&
                  w_k.sizes() == w_q.sizes(),
              "LinearAttentionFusedCuda: feature-map weights must be [", h, ", ", d, ", ", d,
              "], got ", w_q.sizes(), " and ", w_k.sizes());
  const c10::cuda::CUDAGuard guard(q.device());
  const auto resolved = ResolveLinearAttentionCudaKernel(q, kernel);
  const bool tensor_core = resolved == LinearAttentionCudaKernel::kTensorCore;
  TORCH_CHECK(
      !tensor_core || TensorCoreApplies(q),
      "LinearAttentionFusedCuda: the tensor-core kernel needs bfloat16 q, k, v, head_dim 64 "
      "or 128 and a device of compute capability >= 8.0 with enough shared memory per "
      "block (220 KB at head_dim 128); got ",
      dt, ", head_dim ", d, " on ", q.device());
  auto qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  if (tensor_core) {
    qc = Aligned16(qc);
    kc = Aligned16(kc);
    vc = Aligned16(vc);
  }
  auto wq = w_q.to(c10::kFloat).contiguous(), wk = w_k.to(c10::kFloat).contiguous();
  auto out = at::empty(q.sizes(), q.options());                               // [B, Nq, H, D]
  auto state = at::empty({b * h, 2 * d, d}, q.options().dtype(c10::kFloat));  // [B*H, 2D, D]
  auto ksum = at::empty({b * h, 2 * d}, q.options().dtype(c10::kFloat));      // [B*H, 2D]
  cuda::LinearAttentionArgs args;
  args.q = qc.data_ptr();
  args.k = kc.data_ptr();
  args.v = vc.data_ptr();
  args.w_q = wq.data_ptr<float>();
  args.w_k = wk.data_ptr<float>();
  args.out = out.data_ptr();
  args.state = state.data_ptr<float>();
  args.ksum = ksum.data_ptr<float>();
  args.batch = b;
  args.nq = q.size(1);
  args.nk = k.size(1);
  args.heads = h;
  args.head_dim = d;
  args.eps = static_cast<float>(eps);
  args.dtype = dt == c10::kBFloat16 ? cuda::ElementType::kBFloat16 : cuda::ElementType::kFloat32;
  args.num_sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  void* stream = at::cuda::getCurrentCUDAStream().stream();
  const int err = tensor_core ? cuda::LaunchLinearAttentionTensorCore(args, stream)
                              : cuda::LaunchLinearAttention(args, stream);
  TORCH_CHECK(err == 0, "LinearAttentionFusedCuda: ", tensor_core ? "tensor-core" : "cuda-core",
              " kernel launch failed with cudaError ", err);
  return out;
#else
  (void)q, (void)k, (void)v, (void)w_q, (void)w_k, (void)eps, (void)kernel;
  TORCH_CHECK(
      false,
      "LinearAttentionFusedCuda: this build has no fused CUDA kernel (needs LibTorch with CUDA "
      "and nvcc at configure time); use LinearAttention() for the portable path");
#endif
}

}  // namespace linvideo::kernels

// LibTorch glue of the fused CUDA kernel: validation, workspace, stream. Compiled into every build;
// the CUDA part only where CMake linked the kernel (LINVIDEO_KERNELS_CUDA, see
// kernels/CMakeLists.txt).

#include <ATen/ATen.h>

#include "kernels/linear_attention.h"

#if defined(LINVIDEO_KERNELS_CUDA)
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "kernels/linear_attention_fused_cuda.h"
#endif

namespace linvideo::kernels {

bool LinearAttentionFusedCudaCompiled() {
#if defined(LINVIDEO_KERNELS_CUDA)
  return true;
#else
  return false;
#endif
}

torch::Tensor LinearAttentionFusedCuda(const torch::Tensor& q, const torch::Tensor& k,
                                       const torch::Tensor& v, const torch::Tensor& w_q,
                                       const torch::Tensor& w_k, double eps) {
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
  auto qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
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
  const int err = cuda::LaunchLinearAttention(args, at::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == 0, "LinearAttentionFusedCuda: kernel launch failed with cudaError ", err);
  return out;
#else
  (void)q, (void)k, (void)v, (void)w_q, (void)w_k, (void)eps;
  TORCH_CHECK(
      false,
      "LinearAttentionFusedCuda: this build has no fused CUDA kernel (needs LibTorch with CUDA "
      "and nvcc at configure time); use LinearAttention() for the portable path");
#endif
}

}  // namespace linvideo::kernels

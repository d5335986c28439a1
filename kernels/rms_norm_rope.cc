// LibTorch glue of the fused RMSNorm + RoPE kernel. Compiled into every build; the CUDA part only
// where CMake linked the kernels (LINVIDEO_KERNELS_CUDA, see kernels/CMakeLists.txt).

#include "kernels/rms_norm_rope.h"

#include <ATen/ATen.h>

#include <cstdlib>
#include <cstring>

#if defined(LINVIDEO_KERNELS_CUDA)
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "kernels/rms_norm_rope_cuda.h"
#endif

namespace linvideo::kernels {
namespace {

bool EnabledByEnvironment() {
  static const bool enabled = [] {
    const char* raw = std::getenv("LINVIDEO_FUSED_NORM_ROPE");
    return raw == nullptr || std::strcmp(raw, "0") != 0;
  }();
  return enabled;
}

}  // namespace

bool RmsNormRopeFusedApplies(const at::Tensor& x, c10::ScalarType out_dtype) {
#if defined(LINVIDEO_KERNELS_CUDA)
  return EnabledByEnvironment() && x.is_cuda() && x.is_contiguous() && x.dim() == 3 &&
         x.scalar_type() == out_dtype &&
         (out_dtype == c10::kBFloat16 || out_dtype == c10::kFloat) && !at::GradMode::is_enabled();
#else
  (void)x, (void)out_dtype;
  (void)EnabledByEnvironment;
  return false;
#endif
}

at::Tensor RmsNormRopeFused(const at::Tensor& x, const at::Tensor& weight, double eps,
                            const at::Tensor& cos, const at::Tensor& sin, int64_t heads) {
  TORCH_CHECK(x.dim() == 3 && heads > 0 && x.size(2) % heads == 0,
              "RmsNormRopeFused: x must be [B, N, heads * head_dim], got ", x.sizes(), " for ",
              heads, " heads");
  const int64_t b = x.size(0), n = x.size(1), c = x.size(2), d = c / heads;
  TORCH_CHECK(d % 2 == 0, "RmsNormRopeFused: head_dim must be even, got ", d);
  TORCH_CHECK(weight.numel() == c, "RmsNormRopeFused: weight must have ", c, " elements, got ",
              weight.numel());
  TORCH_CHECK(cos.dim() == 3 && cos.size(0) == n && cos.size(1) == 1 && cos.size(2) == d / 2 &&
                  sin.sizes() == cos.sizes(),
              "RmsNormRopeFused: cos/sin must be [", n, ", 1, ", d / 2, "], got ", cos.sizes(),
              " and ", sin.sizes());
#if defined(LINVIDEO_KERNELS_CUDA)
  TORCH_CHECK(RmsNormRopeFusedApplies(x, x.scalar_type()),
              "RmsNormRopeFused: needs a contiguous CUDA bf16 or fp32 x with grad mode off, got ",
              x.scalar_type(), " on ", x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  const auto to_f32 = [&](const at::Tensor& t) {
    return t.to(x.device(), c10::kFloat).contiguous();
  };
  const at::Tensor w = to_f32(weight), cs = to_f32(cos), sn = to_f32(sin);
  auto out = at::empty({b, n, heads, d}, x.options());
  cuda::RmsNormRopeArgs args;
  args.x = x.data_ptr();
  args.weight = w.data_ptr<float>();
  args.cos = cs.data_ptr<float>();
  args.sin = sn.data_ptr<float>();
  args.out = out.data_ptr();
  args.rows = b * n;
  args.tokens = n;
  args.channels = c;
  args.head_dim = d;
  args.eps = static_cast<float>(eps);
  args.bf16 = x.scalar_type() == c10::kBFloat16;
  const int err = cuda::LaunchRmsNormRope(args, at::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == 0, "RmsNormRopeFused: kernel launch failed with cudaError ", err, " (",
              cuda::RmsNormRopeErrorString(err), ")");
  return out;
#else
  (void)b, (void)eps;
  TORCH_CHECK(false,
              "RmsNormRopeFused: this build has no CUDA kernels (needs LibTorch with CUDA and nvcc "
              "at configure time)");
#endif
}

}  // namespace linvideo::kernels

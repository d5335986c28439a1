#pragma once
// The one place where LibTorch version differences are handled. Debian 12 ships LibTorch 1.13.1
// (CPU); the GPU machines and production images use LibTorch 2.x.

#include <torch/version.h>

// LibTorch >= 2.0 has at::scaled_dot_product_attention (flash / memory-efficient kernels on CUDA).
#if TORCH_VERSION_MAJOR >= 2
#define LINVIDEO_TORCH_HAS_SDPA 1
#else
#define LINVIDEO_TORCH_HAS_SDPA 0
#endif

#include <ATen/autocast_mode.h>

namespace linvideo::kernels {

// Whether CPU autocast is on in this thread (e.g. inside a ScopedCpuBf16Autocast).
inline bool CpuAutocastEnabled() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::is_autocast_enabled(at::kCPU);
#else
  return at::autocast::is_cpu_enabled();
#endif
}

// Enables CPU autocast to bfloat16 for its lifetime (matmuls, linears and convolutions run in
// bf16 with fp32 inputs, weights and gradients; reductions and norms stay fp32). LibTorch 2.4
// replaced the per-device setters with device-type arguments. On exit the autocast weight cache
// is cleared: cached bf16 copies of weights would otherwise outlive an optimizer step.
class ScopedCpuBf16Autocast {
 public:
  explicit ScopedCpuBf16Autocast(bool enable) : enable_(enable) {
    if (!enable_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    was_enabled_ = at::autocast::is_autocast_enabled(at::kCPU);
    old_dtype_ = at::autocast::get_autocast_dtype(at::kCPU);
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
#else
    was_enabled_ = at::autocast::is_cpu_enabled();
    old_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
#endif
    at::autocast::increment_nesting();
  }
  ~ScopedCpuBf16Autocast() {
    if (!enable_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCPU, was_enabled_);
    at::autocast::set_autocast_dtype(at::kCPU, old_dtype_);
#else
    at::autocast::set_cpu_enabled(was_enabled_);
    at::autocast::set_autocast_cpu_dtype(old_dtype_);
#endif
  }
  ScopedCpuBf16Autocast(const ScopedCpuBf16Autocast&) = delete;
  ScopedCpuBf16Autocast& operator=(const ScopedCpuBf16Autocast&) = delete;

 private:
  bool enable_;
  bool was_enabled_ = false;
  at::ScalarType old_dtype_ = at::kBFloat16;
};

// Bf16 autocast for the device type of `device` (CPU or CUDA), otherwise as ScopedCpuBf16Autocast.
class ScopedBf16Autocast {
 public:
  ScopedBf16Autocast(bool enable, const c10::Device& device)
      : cpu_(enable && device.is_cpu()), cuda_(enable && device.is_cuda()) {
    if (!cuda_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    was_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    old_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
    was_enabled_ = at::autocast::is_enabled();
    old_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
    at::autocast::increment_nesting();
  }
  ~ScopedBf16Autocast() {
    if (!cuda_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, was_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, old_dtype_);
#else
    at::autocast::set_enabled(was_enabled_);
    at::autocast::set_autocast_gpu_dtype(old_dtype_);
#endif
  }
  ScopedBf16Autocast(const ScopedBf16Autocast&) = delete;
  ScopedBf16Autocast& operator=(const ScopedBf16Autocast&) = delete;

 private:
  ScopedCpuBf16Autocast cpu_;
  bool cuda_;
  bool was_enabled_ = false;
  at::ScalarType old_dtype_ = at::kBFloat16;
};

}  // namespace linvideo::kernels

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

// Enables autocast to bfloat16 on one device type (CPU or CUDA) for its lifetime (matmuls, linears
// and convolutions run in bf16 with fp32 inputs, weights and gradients; reductions and norms stay
// fp32); other device types are left alone. LibTorch 2.4 replaced the per-device setters with
// device-type arguments. On exit the autocast weight cache is cleared: cached bf16 copies of
// weights would otherwise outlive an optimizer step.
class ScopedBf16Autocast {
 public:
  ScopedBf16Autocast(bool enable, c10::DeviceType type)
      : type_(type), enable_(enable && (type == at::kCPU || type == at::kCUDA)) {
    if (!enable_) return;
    was_enabled_ = Enabled(type_);
    old_dtype_ = Dtype(type_);
    Set(type_, true, at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~ScopedBf16Autocast() {
    if (!enable_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    Set(type_, was_enabled_, old_dtype_);
  }
  ScopedBf16Autocast(const ScopedBf16Autocast&) = delete;
  ScopedBf16Autocast& operator=(const ScopedBf16Autocast&) = delete;

 private:
  static bool Enabled(c10::DeviceType type) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    return at::autocast::is_autocast_enabled(type);
#else
    return type == at::kCPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
#endif
  }
  static at::ScalarType Dtype(c10::DeviceType type) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    return at::autocast::get_autocast_dtype(type);
#else
    return type == at::kCPU ? at::autocast::get_autocast_cpu_dtype()
                            : at::autocast::get_autocast_gpu_dtype();
#endif
  }
  static void Set(c10::DeviceType type, bool enabled, at::ScalarType dtype) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(type, enabled);
    at::autocast::set_autocast_dtype(type, dtype);
#else
    if (type == at::kCPU) {
      at::autocast::set_cpu_enabled(enabled);
      at::autocast::set_autocast_cpu_dtype(dtype);
    } else {
      at::autocast::set_enabled(enabled);
      at::autocast::set_autocast_gpu_dtype(dtype);
    }
#endif
  }
  c10::DeviceType type_;
  bool enable_;
  bool was_enabled_ = false;
  at::ScalarType old_dtype_ = at::kBFloat16;
};

// CPU bf16 autocast (the trainers' forward passes).
class ScopedCpuBf16Autocast : public ScopedBf16Autocast {
 public:
  explicit ScopedCpuBf16Autocast(bool enable) : ScopedBf16Autocast(enable, at::kCPU) {}
};

}  // namespace linvideo::kernels

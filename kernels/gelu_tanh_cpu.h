#pragma once
// Internal to kernels/: the raw loops behind GeluTanh (kernels/gelu_tanh.h) over contiguous
// buffers of n elements, split over LibTorch's intra-op threads. `out` may alias `x` (in place).
// bf16 buffers are raw c10::BFloat16 bits.

#include <cstdint>

namespace linvideo::kernels::gelu_cpu {

void ForwardF32(const float* x, float* out, int64_t n);
void ForwardBf16(const uint16_t* x, uint16_t* out, int64_t n);
void BackwardF32(const float* grad, const float* x, float* out, int64_t n);
void BackwardBf16(const uint16_t* grad, const uint16_t* x, uint16_t* out, int64_t n);

}  // namespace linvideo::kernels::gelu_cpu

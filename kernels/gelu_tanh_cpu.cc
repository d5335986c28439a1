// The vectorised GELU(tanh) loops (kernels/gelu_tanh.h for the maths). Compiled with -O3 and
// OpenMP (kernels/CMakeLists.txt); each loop is cloned for AVX-512 / AVX2 / baseline and picked at
// load time, so the binary stays portable.

#include "kernels/gelu_tanh_cpu.h"

#include <ATen/Parallel.h>

#include <cmath>

#include "kernels/cpu_math.h"

namespace linvideo::kernels::gelu_cpu {
namespace {

using cpu_math::Bf16ToFloat;
using cpu_math::ExpNonPositive;
using cpu_math::FloatToBf16;

constexpr float kSqrt2OverPi = 0.797884560802865355f;
constexpr float kCubic = 0.044715f;
// Elements per parallel task: ~64 KiB of fp32, so 2 threads split even one DiT token row block.
constexpr int64_t kGrain = 16384;

LINVIDEO_KERNEL_INLINE float Gelu(float x) {
  const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
  const float e = ExpNonPositive(-2.0f * std::fabs(u));  // e^(−2|u|) in (0, 1]
  const float r = 1.0f / (1.0f + e);
  const float er = e * r;  // computed on both sides of the select, so it is a blend, not a branch
  const float s = u >= 0.0f ? r : er;  // sigmoid(2u) = 0.5·(1 + tanh(u))
  return x * s;
}

LINVIDEO_KERNEL_INLINE float GeluGrad(float g, float x) {
  const float x2 = x * x;
  const float u = kSqrt2OverPi * (x + kCubic * x2 * x);
  const float du = kSqrt2OverPi * (1.0f + 3.0f * kCubic * x2);
  const float e = ExpNonPositive(-2.0f * std::fabs(u));
  const float r = 1.0f / (1.0f + e);
  const float er = e * r;
  const float s = u >= 0.0f ? r : er;
  const float s_one_minus_s = er * r;  // s·(1 − s) for either sign of u
  return g * (s + 2.0f * x * s_one_minus_s * du);
}

__attribute__((target_clones("avx512f", "arch=haswell", "default"))) void ForwardF32Range(
    const float* x, float* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = Gelu(x[i]);
}

__attribute__((target_clones("avx512f", "arch=haswell", "default"))) void ForwardBf16Range(
    const uint16_t* x, uint16_t* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = FloatToBf16(Gelu(Bf16ToFloat(x[i])));
}

__attribute__((target_clones("avx512f", "arch=haswell", "default"))) void BackwardF32Range(
    const float* g, const float* x, float* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = GeluGrad(g[i], x[i]);
}

__attribute__((target_clones("avx512f", "arch=haswell", "default"))) void BackwardBf16Range(
    const uint16_t* g, const uint16_t* x, uint16_t* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    out[i] = FloatToBf16(GeluGrad(Bf16ToFloat(g[i]), Bf16ToFloat(x[i])));
  }
}

template <typename F>
void Split(int64_t n, const F& f) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) { f(begin, end - begin); });
}

}  // namespace

void ForwardF32(const float* x, float* out, int64_t n) {
  Split(n, [&](int64_t b, int64_t len) { ForwardF32Range(x + b, out + b, len); });
}
void ForwardBf16(const uint16_t* x, uint16_t* out, int64_t n) {
  Split(n, [&](int64_t b, int64_t len) { ForwardBf16Range(x + b, out + b, len); });
}
void BackwardF32(const float* grad, const float* x, float* out, int64_t n) {
  Split(n, [&](int64_t b, int64_t len) { BackwardF32Range(grad + b, x + b, out + b, len); });
}
void BackwardBf16(const uint16_t* grad, const uint16_t* x, uint16_t* out, int64_t n) {
  Split(n, [&](int64_t b, int64_t len) { BackwardBf16Range(grad + b, x + b, out + b, len); });
}

}  // namespace linvideo::kernels::gelu_cpu

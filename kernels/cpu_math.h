#pragma once
// Internal to kernels/: scalar float math written so that GCC vectorises the loops calling it
// (std::exp does not vectorise without libmvec). Include only from sources compiled with -O3 and
// target_clones (see kernels/CMakeLists.txt).

#include <cmath>
#include <cstdint>
#include <cstring>

// Forced inline: a plain inline function is compiled for the baseline target and GCC will not
// inline it into a target_clones clone of another ISA, so the clone's loop would call it per
// element and not vectorise at all.
#define LINVIDEO_KERNEL_INLINE inline __attribute__((always_inline))

namespace linvideo::kernels::cpu_math {

// exp(x) for x <= 0: 2^n · e^r with n = round(x·log2 e) and r = x − n·ln 2 (Cody–Waite: ln 2 in
// two parts, so r keeps full precision even for x near −87), e^r by its degree-7 Taylor
// polynomial on |r| ≤ 0.347 (truncation < 1e-8). About 1–2 ulp. Returns 0 below −87 (where
// e^x < 1.7e-38 would leave the normal range).
LINVIDEO_KERNEL_INLINE float ExpNonPositive(float x) {
  const bool underflow = x < -87.0f;
  x = underflow ? -87.0f : x;
  // Round to nearest by adding and subtracting 1.5·2^23 (exact for |t| < 2^22), not
  // std::nearbyint, which is a library call below SSE4.1 and keeps the baseline clone scalar.
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  // ln 2 = 0.693359375 (exact in 9 bits, so n·that is exact) − 2.12194440e-4.
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return underflow ? 0.0f : p * scale;
}

// bfloat16 <-> float as LibTorch's c10::BFloat16 does them: widening is exact; narrowing rounds
// to nearest even, and any NaN becomes the quiet NaN 0x7FC0.
LINVIDEO_KERNEL_INLINE float Bf16ToFloat(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

LINVIDEO_KERNEL_INLINE uint16_t FloatToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  const bool nan = (bits & 0x7FFFFFFFu) > 0x7F800000u;
  return static_cast<uint16_t>(nan ? 0x7FC0u : rounded);
}

}  // namespace linvideo::kernels::cpu_math

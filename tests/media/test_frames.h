#pragma once
// Synthetic frames and image metrics shared by the media tests.

#include <cmath>
#include <cstdint>
#include <limits>

#include "media/frames.h"

namespace linvideo::media::testing {

// Smooth colour waves that move a few pixels per frame (so every frame differs and motion
// compensation has real work), RGB24, [frames, height, width, 3].
inline VideoFrames MovingGradient(int frames, int height, int width) {
  constexpr double kTwoPi = 6.283185307179586;
  VideoFrames v{frames, height, width, {}};
  v.rgb.resize(static_cast<size_t>(frames) * height * width * 3);
  size_t i = 0;
  for (int f = 0; f < frames; ++f) {
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        v.rgb[i++] = static_cast<uint8_t>(128 + 100 * std::sin(kTwoPi * (x + 2.0 * f) / width));
        v.rgb[i++] = static_cast<uint8_t>(128 + 100 * std::cos(kTwoPi * (y - 1.0 * f) / height));
        v.rgb[i++] = static_cast<uint8_t>(
            128 + 80 * std::sin(kTwoPi * (x + y + 3.0 * f) / (width + height)));
      }
    }
  }
  return v;
}

// PSNR in dB of `b` against `a` over a height x width window of frame fa / fb (both RGB24,
// possibly of different widths, e.g. a padded decode against an odd-sized source).
inline double FramePsnr(const FrameView& a, int fa, const FrameView& b, int fb, int height,
                        int width) {
  double se = 0;
  for (int y = 0; y < height; ++y) {
    const uint8_t* ra = a.Frame(fa) + static_cast<size_t>(y) * a.width * 3;
    const uint8_t* rb = b.Frame(fb) + static_cast<size_t>(y) * b.width * 3;
    for (int k = 0; k < width * 3; ++k) {
      const double d = static_cast<double>(ra[k]) - rb[k];
      se += d * d;
    }
  }
  const double mse = se / (static_cast<double>(height) * width * 3);
  return mse == 0 ? std::numeric_limits<double>::infinity() : 10 * std::log10(255.0 * 255.0 / mse);
}

}  // namespace linvideo::media::testing

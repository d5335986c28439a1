#pragma once
// Raw RGB24 frame containers shared by the media encoders and decoder (no LibTorch, no FFmpeg).
//
// Layout everywhere: frame-major, then rows, then columns, then the 3 channels R, G, B (uint8),
// i.e. byte (f, y, x, c) lives at ((f * height + y) * width + x) * 3 + c — the layout of a
// [F, H, W, 3] uint8 tensor, so a contiguous tensor's data_ptr() can be wrapped without copying.
//
// Ownership: FrameView borrows (the caller keeps the pixels alive for the duration of the call);
// VideoFrames owns its pixels. Both are plain values; reading them from several threads is safe.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"

namespace linvideo::media {

// Largest accepted width or height (pixels) and frame count; generous for Wan (≤ 1280×720, 81
// frames) while keeping F*H*W*3 far from overflowing and rejecting garbage dimensions early.
inline constexpr int kMaxDimension = 8192;
inline constexpr int kMaxFrames = 100000;

// A borrowed, read-only view of `frames` RGB24 frames of `height` x `width` pixels.
struct FrameView {
  const uint8_t* rgb = nullptr;  // frames * height * width * 3 bytes, not owned
  int frames = 0;
  int height = 0;
  int width = 0;

  size_t FrameBytes() const { return static_cast<size_t>(height) * width * 3; }
  size_t TotalBytes() const { return FrameBytes() * static_cast<size_t>(frames); }
  const uint8_t* Frame(int index) const { return rgb + FrameBytes() * index; }
  // The single frame `index` as a one-frame view (no copy). `index` must be in [0, frames).
  FrameView Single(int index) const { return FrameView{Frame(index), 1, height, width}; }
};

// Owned RGB24 frames (same layout as FrameView).
struct VideoFrames {
  int frames = 0;
  int height = 0;
  int width = 0;
  std::vector<uint8_t> rgb;  // frames * height * width * 3 bytes

  FrameView View() const { return FrameView{rgb.data(), frames, height, width}; }
};

// Checks that `view` is usable: non-null pixels, 1 ≤ frames ≤ kMaxFrames and
// 1 ≤ height, width ≤ kMaxDimension. INVALID_ARGUMENT (with the allowed ranges) otherwise.
absl::Status ValidateFrameView(const FrameView& view);

// ValidateFrameView plus rgb.size() == frames * height * width * 3.
absl::Status ValidateVideoFrames(const VideoFrames& frames);

}  // namespace linvideo::media

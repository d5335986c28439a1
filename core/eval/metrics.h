#pragma once
// Frame-level image metrics: PSNR and SSIM between two videos (fidelity to a reference), and the
// edge sharpness of an object (frame quality).
//
// Pure functions over caller-owned RGB24 pixels in [F, H, W, 3] order; thread-safe.

#include <cstdint>
#include <vector>

#include "core/data/scene.h"
#include "core/eval/detect.h"

namespace linvideo::core::eval {

// Identical frames give this PSNR (instead of infinity), so means stay finite.
inline constexpr double kMaxPsnr = 100.0;

// Per-frame PSNR (dB, peak 255, over all RGB values) of two equally sized videos.
std::vector<double> FramePsnr(const uint8_t* a, const uint8_t* b, int frames, int height,
                              int width);
// Per-frame SSIM of the luma (BT.601) with a 7x7 uniform window, K1 = 0.01, K2 = 0.03 (the
// scikit-image defaults); 1 for identical frames. Frames smaller than 7x7 use the whole frame.
std::vector<double> FrameSsim(const uint8_t* a, const uint8_t* b, int frames, int height,
                              int width);

// Mean edge sharpness of the object of colour `color` over `background` (RGB): on a coverage map
// (alpha along the background->colour line), the mean over the object's boundary pixels (alpha
// >= 0.5 with a 4-neighbour below 0.5) of the largest central-difference slope. A one-pixel
// anti-aliased edge gives ~0.4-0.5, blurrier edges less; 0 if the object has no boundary pixels.
// Only pixels within 2 px of the object's per-frame bounding box (`track`, as DetectScene found
// it) count, so background noise elsewhere does not pose as edges; frames without it are skipped.
double EdgeSharpness(const uint8_t* rgb, int frames, int height, int width,
                     const data::Rgb& background, const data::Rgb& color,
                     const std::vector<FrameObject>& track);

}  // namespace linvideo::core::eval

#pragma once
// Pixel-level detectors for shapes-world videos: background colour, the objects (one per palette
// colour), and per object its shape, size, centroid track and motion direction.
//
// How: the background is the per-channel median of the border pixels (all frames), snapped to the
// nearest background palette colour. Each pixel is explained as a blend of the background and one
// palette colour (alpha along the background->colour line, and the residual off that line); a
// pixel belongs to colour c if alpha >= 0.5 and the residual is small — so anti-aliased edges are
// not mistaken for other colours. Per frame and colour the largest 4-connected component is the
// object (scattered noise never forms a large component). Shape comes from the fill ratio of the
// component's bounding box (square ~1, circle ~0.79, triangle/diamond ~0.5) and the vertical
// offset of its centroid within the box (triangle ~+1/6, diamond 0); size from the box extent;
// motion from the centroid displacement between the first and last quarter of the frames.
//
// Pure functions over caller-owned pixels; thread-safe.

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/scene.h"

namespace linvideo::core::eval {

struct DetectorOptions {
  double max_background_distance = 60.0;  // RGB distance to accept a background palette colour
  double max_residual = 45.0;             // RGB distance off the background->colour line
  double min_object_fraction = 0.2;       // min component area, in units of the small circle's area
  double min_presence = 0.5;              // fraction of frames an object must be found in
  double still_threshold = 0.08;          // displacement (fraction of the frame) below which: still
  double size_threshold = 0.32;  // box extent / min(H, W): small 0.24 below, large 0.40 above
};

// One object (one colour) in one frame; `present` false when no component was large enough.
struct FrameObject {
  bool present = false;
  double cx = 0, cy = 0;     // alpha-weighted centroid, pixels
  double area = 0;           // pixels in the component
  int box_x = 0, box_y = 0;  // top-left pixel of the bounding box
  int box_w = 0, box_h = 0;
  double fill = 0;      // area / (box_w * box_h)
  double offset_y = 0;  // (centroid y - box centre y) / box_h
  data::Shape shape = data::Shape::kCircle;
};

struct DetectedObject {
  data::Color color = data::Color::kRed;
  data::Shape shape = data::Shape::kCircle;  // majority over the frames where present
  data::Size size = data::Size::kSmall;
  data::Motion motion = data::Motion::kStill;
  double presence = 0;             // fraction of frames where present
  double shape_agreement = 0;      // fraction of present frames whose shape == `shape`
  double mean_area = 0;            // pixels
  double extent = 0;               // median box extent / min(H, W)
  double dx = 0, dy = 0;           // displacement, fractions of width / height
  std::vector<FrameObject> track;  // one per frame
};

struct Detection {
  int frames = 0, height = 0, width = 0;
  data::Rgb background_rgb;  // measured (median of the border)
  data::Background background = data::Background::kWhite;
  bool background_known = false;        // the measured colour is near a palette background
  double background_noise = 0;          // RMS RGB deviation of the border pixels from their median
  std::vector<DetectedObject> objects;  // present in >= min_presence of frames; largest first
  // Index into `objects` of the object with `color`, or -1.
  int Find(data::Color color) const;
};

// `rgb`: frames * height * width * 3 bytes, [F, H, W, 3].
Detection DetectScene(const uint8_t* rgb, int frames, int height, int width,
                      const DetectorOptions& options = {});
// `video`: uint8 [F, H, W, 3] on the CPU (made contiguous if needed).
absl::StatusOr<Detection> DetectScene(const torch::Tensor& video,
                                      const DetectorOptions& options = {});

// Shape from a component's fill ratio and vertical centroid offset (exposed for tests).
data::Shape ClassifyShape(double fill, double offset_y);

// Coverage of colour `c` at `pixel` as a blend over `bg`: alpha in [0, 1] (clamped) and the
// RGB distance of the pixel from the blend line.
void BlendAlpha(const uint8_t* pixel, const data::Rgb& bg, const data::Rgb& c, double* alpha,
                double* residual);

}  // namespace linvideo::core::eval

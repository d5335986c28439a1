#include "core/data/render.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/common/status.h"

namespace linvideo::core::data {
namespace {

absl::Status CheckSizes(int64_t frames, int64_t height, int64_t width) {
  if (frames < 1 || frames > 1024 || height < 1 || height > 4096 || width < 1 || width > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("render size ", frames, "x", height, "x", width,
                     " is not allowed; frames 1..1024, height and width 1..4096"));
  }
  return absl::OkStatus();
}

// Composites one object (coverage-weighted over whatever is already there) into one frame.
void DrawObject(const ObjectSpec& o, double cx, double cy, double r, int height, int width,
                uint8_t* frame) {
  const Rgb c = ColorRgb(o.color);
  const float col[3] = {static_cast<float>(c.r), static_cast<float>(c.g), static_cast<float>(c.b)};
  const int x_lo = std::max(0, static_cast<int>(std::floor(cx - r - 1)));
  const int x_hi = std::min(width - 1, static_cast<int>(std::ceil(cx + r + 1)));
  const int y_lo = std::max(0, static_cast<int>(std::floor(cy - r - 1)));
  const int y_hi = std::min(height - 1, static_cast<int>(std::ceil(cy + r + 1)));
  for (int y = y_lo; y <= y_hi; ++y) {
    uint8_t* row = frame + static_cast<size_t>(y) * width * 3;
    for (int x = x_lo; x <= x_hi; ++x) {
      // Pixel centres sit at half-integer coordinates.
      const double d = ShapeDistance(o.shape, r, x + 0.5 - cx, y + 0.5 - cy);
      const float cov = static_cast<float>(std::clamp(0.5 - d, 0.0, 1.0));
      if (cov <= 0.0f) continue;
      uint8_t* p = row + x * 3;
      for (int k = 0; k < 3; ++k) {
        p[k] = static_cast<uint8_t>(std::lrint(p[k] + cov * (col[k] - p[k])));
      }
    }
  }
}

}  // namespace

double ShapeDistance(Shape shape, double r, double px, double py) {
  switch (shape) {
    case Shape::kCircle:
      return std::hypot(px, py) - r;
    case Shape::kSquare: {
      const double qx = std::abs(px) - r, qy = std::abs(py) - r;
      const double ox = std::max(qx, 0.0), oy = std::max(qy, 0.0);
      return std::hypot(ox, oy) + std::min(std::max(qx, qy), 0.0);
    }
    case Shape::kDiamond:
      return (std::abs(px) + std::abs(py) - r) * M_SQRT1_2;
    case Shape::kTriangle: {
      // Apex (0, -r), base corners (+-r, r); max of the three edges' half-plane distances.
      static const double kInvSqrt5 = 1.0 / std::sqrt(5.0);
      const double side = (2.0 * std::abs(px) - py - r) * kInvSqrt5;
      return std::max(side, py - r);
    }
  }
  return 0.0;
}

absl::Status RenderInto(const SceneSpec& spec, int frames, int height, int width, uint8_t* rgb) {
  LV_RETURN_IF_ERROR(CheckSizes(frames, height, width));
  LV_RETURN_IF_ERROR(ValidateScene(spec));
  const Rgb bg = BackgroundRgb(spec.background);
  const size_t frame_bytes = static_cast<size_t>(height) * width * 3;
  const double scale = std::min(height, width);
  for (int f = 0; f < frames; ++f) {
    uint8_t* frame = rgb + frame_bytes * f;
    for (size_t i = 0; i < frame_bytes; i += 3) {
      frame[i] = bg.r;
      frame[i + 1] = bg.g;
      frame[i + 2] = bg.b;
    }
    const double t = frames > 1 ? static_cast<double>(f) / (frames - 1) : 0.0;
    for (const ObjectSpec& o : spec.objects) {
      double x, y;
      ObjectCenter(o, t, &x, &y);
      DrawObject(o, x * width, y * height, RadiusFraction(o.size) * scale, height, width, frame);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<torch::Tensor> Render(const SceneSpec& spec, int64_t frames, int64_t height,
                                     int64_t width) {
  LV_RETURN_IF_ERROR(CheckSizes(frames, height, width));
  torch::Tensor video = torch::empty({frames, height, width, 3}, torch::kUInt8);  // [F, H, W, 3]
  LV_RETURN_IF_ERROR(RenderInto(spec, static_cast<int>(frames), static_cast<int>(height),
                                static_cast<int>(width), video.data_ptr<uint8_t>()));
  return video;
}

}  // namespace linvideo::core::data

#include "core/eval/detect.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/common/status.h"

namespace linvideo::core::eval {
namespace {

using data::Rgb;

constexpr int kNoLabel = -1;

// Per-channel median of the one-pixel border ring over all frames, and the RMS distance of those
// pixels from it.
void MeasureBorder(const uint8_t* rgb, int frames, int height, int width, Rgb* median,
                   double* noise) {
  std::array<std::array<int64_t, 256>, 3> hist{};
  auto visit = [&](auto&& fn) {
    for (int f = 0; f < frames; ++f) {
      const uint8_t* frame = rgb + static_cast<size_t>(f) * height * width * 3;
      for (int x = 0; x < width; ++x) {
        fn(frame + x * 3);
        if (height > 1) fn(frame + (static_cast<size_t>(height - 1) * width + x) * 3);
      }
      for (int y = 1; y + 1 < height; ++y) {
        fn(frame + static_cast<size_t>(y) * width * 3);
        if (width > 1) fn(frame + (static_cast<size_t>(y) * width + width - 1) * 3);
      }
    }
  };
  int64_t n = 0;
  visit([&](const uint8_t* p) {
    for (int k = 0; k < 3; ++k) ++hist[k][p[k]];
    ++n;
  });
  uint8_t m[3];
  for (int k = 0; k < 3; ++k) {
    int64_t seen = 0;
    int v = 0;
    while (v < 255 && (seen += hist[k][v]) * 2 < n) ++v;
    m[k] = static_cast<uint8_t>(v);
  }
  *median = {m[0], m[1], m[2]};
  double sum = 0;
  visit([&](const uint8_t* p) {
    for (int k = 0; k < 3; ++k) sum += (p[k] - m[k]) * (p[k] - m[k]);
  });
  *noise = n > 0 ? std::sqrt(sum / n) : 0.0;
}

double Distance(const Rgb& a, const Rgb& b) {
  const double dr = a.r - b.r, dg = a.g - b.g, db = a.b - b.b;
  return std::sqrt(dr * dr + dg * dg + db * db);
}

// Largest 4-connected component of `label == c`; fills `obj` (not present if none >= min_area).
void LargestComponent(const std::vector<int8_t>& label, int c, const uint8_t* frame, const Rgb& bg,
                      const Rgb& color, double max_residual, int height, int width, double min_area,
                      std::vector<int>* stack, std::vector<uint8_t>* seen, FrameObject* obj) {
  std::fill(seen->begin(), seen->end(), 0);
  std::vector<int> best, current;
  for (int start = 0; start < height * width; ++start) {
    if (label[start] != c || (*seen)[start]) continue;
    current.clear();
    stack->clear();
    stack->push_back(start);
    (*seen)[start] = 1;
    while (!stack->empty()) {
      const int i = stack->back();
      stack->pop_back();
      current.push_back(i);
      const int y = i / width, x = i % width;
      const int nb[4] = {x > 0 ? i - 1 : -1, x + 1 < width ? i + 1 : -1, y > 0 ? i - width : -1,
                         y + 1 < height ? i + width : -1};
      for (int j : nb) {
        if (j >= 0 && label[j] == c && !(*seen)[j]) {
          (*seen)[j] = 1;
          stack->push_back(j);
        }
      }
    }
    if (current.size() > best.size()) best.swap(current);
  }
  *obj = FrameObject();
  if (best.empty() || static_cast<double>(best.size()) < min_area) return;
  int x0 = width, x1 = -1, y0 = height, y1 = -1;
  double my = 0;
  for (int i : best) {
    const int y = i / width, x = i % width;
    x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    my += y;
  }
  // Coverage-weighted centroid over the box grown by a pixel, so that partially covered edge
  // pixels (alpha < 0.5, outside the component) count too: sub-pixel accurate tracks.
  double wsum = 0, wx = 0, wy = 0;
  for (int y = std::max(0, y0 - 1); y <= std::min(height - 1, y1 + 1); ++y) {
    for (int x = std::max(0, x0 - 1); x <= std::min(width - 1, x1 + 1); ++x) {
      double a, res;
      BlendAlpha(frame + (static_cast<size_t>(y) * width + x) * 3, bg, color, &a, &res);
      if (res > max_residual) continue;
      wsum += a, wx += a * (x + 0.5), wy += a * (y + 0.5);
    }
  }
  obj->present = true;
  obj->area = static_cast<double>(best.size());
  obj->cx = wx / wsum;
  obj->cy = wy / wsum;
  obj->box_x = x0;
  obj->box_y = y0;
  obj->box_w = x1 - x0 + 1;
  obj->box_h = y1 - y0 + 1;
  obj->fill = obj->area / (static_cast<double>(obj->box_w) * obj->box_h);
  obj->offset_y = (my / obj->area - (y0 + y1) / 2.0) / obj->box_h;
  obj->shape = ClassifyShape(obj->fill, obj->offset_y);
}

double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / v.size();
}

}  // namespace

int Detection::Find(data::Color color) const {
  for (size_t i = 0; i < objects.size(); ++i) {
    if (objects[i].color == color) return static_cast<int>(i);
  }
  return -1;
}

data::Shape ClassifyShape(double fill, double offset_y) {
  if (fill >= 0.9) return data::Shape::kSquare;
  if (fill >= 0.64) return data::Shape::kCircle;
  return offset_y > 0.08 ? data::Shape::kTriangle : data::Shape::kDiamond;
}

void BlendAlpha(const uint8_t* p, const Rgb& bg, const Rgb& c, double* alpha, double* residual) {
  const double v[3] = {static_cast<double>(c.r - bg.r), static_cast<double>(c.g - bg.g),
                       static_cast<double>(c.b - bg.b)};
  const double w[3] = {static_cast<double>(p[0] - bg.r), static_cast<double>(p[1] - bg.g),
                       static_cast<double>(p[2] - bg.b)};
  const double vv = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
  const double a =
      vv > 0 ? std::clamp((w[0] * v[0] + w[1] * v[1] + w[2] * v[2]) / vv, 0.0, 1.0) : 0.0;
  double r2 = 0;
  for (int k = 0; k < 3; ++k) r2 += (w[k] - a * v[k]) * (w[k] - a * v[k]);
  *alpha = a;
  *residual = std::sqrt(r2);
}

Detection DetectScene(const uint8_t* rgb, int frames, int height, int width,
                      const DetectorOptions& opt) {
  Detection d;
  d.frames = frames, d.height = height, d.width = width;
  MeasureBorder(rgb, frames, height, width, &d.background_rgb, &d.background_noise);
  double best = 1e9;
  for (int b = 0; b < data::kNumBackgrounds; ++b) {
    const double dist = Distance(d.background_rgb, BackgroundRgb(static_cast<data::Background>(b)));
    if (dist < best) best = dist, d.background = static_cast<data::Background>(b);
  }
  d.background_known = best <= opt.max_background_distance;

  const int pixels = height * width;
  const double scale = std::min(height, width);
  const double small_r = data::RadiusFraction(data::Size::kSmall) * scale;
  const double min_area = opt.min_object_fraction * M_PI * small_r * small_r;
  std::vector<int8_t> label(pixels);
  std::vector<int> stack;
  std::vector<uint8_t> seen(pixels);
  std::vector<std::vector<FrameObject>> tracks(data::kNumColors, std::vector<FrameObject>(frames));
  Rgb palette[data::kNumColors];
  double min_half_contrast2 = 1e18;
  for (int c = 0; c < data::kNumColors; ++c) {
    palette[c] = ColorRgb(static_cast<data::Color>(c));
    const double dist = Distance(palette[c], d.background_rgb) / 2;
    min_half_contrast2 = std::min(min_half_contrast2, dist * dist);
  }

  for (int f = 0; f < frames; ++f) {
    const uint8_t* frame = rgb + static_cast<size_t>(f) * pixels * 3;
    int counts[data::kNumColors] = {};
    for (int i = 0; i < pixels; ++i) {
      const uint8_t* p = frame + i * 3;
      const double wr = p[0] - d.background_rgb.r, wg = p[1] - d.background_rgb.g,
                   wb = p[2] - d.background_rgb.b;
      label[i] = kNoLabel;
      // alpha >= 0.5 needs |p - bg| >= |c - bg| / 2: most background pixels stop here.
      if (wr * wr + wg * wg + wb * wb < min_half_contrast2) continue;
      // The colour that explains the pixel best (smallest residual) labels it, and only if that
      // colour covers at least half of it: an edge pixel of one colour at coverage 0.45 must not
      // be claimed by a neighbouring colour line that happens to give it alpha 0.55.
      int best_c = kNoLabel;
      double best_res = opt.max_residual, best_alpha = 0;
      for (int c = 0; c < data::kNumColors; ++c) {
        double a, res;
        BlendAlpha(p, d.background_rgb, palette[c], &a, &res);
        if (a > 0 && res <= best_res) best_c = c, best_res = res, best_alpha = a;
      }
      if (best_c == kNoLabel || best_alpha < 0.5) continue;
      label[i] = static_cast<int8_t>(best_c);
      if (best_c != kNoLabel) ++counts[best_c];
    }
    for (int c = 0; c < data::kNumColors; ++c) {
      if (counts[c] >= min_area) {
        LargestComponent(label, c, frame, d.background_rgb, palette[c], opt.max_residual, height,
                         width, min_area, &stack, &seen, &tracks[c][f]);
      }
    }
  }

  for (int c = 0; c < data::kNumColors; ++c) {
    const std::vector<FrameObject>& track = tracks[c];
    std::vector<int> present;
    for (int f = 0; f < frames; ++f) {
      if (track[f].present) present.push_back(f);
    }
    const double presence = static_cast<double>(present.size()) / frames;
    if (present.empty() || presence < opt.min_presence) continue;
    DetectedObject o;
    o.color = static_cast<data::Color>(c);
    o.presence = presence;
    o.track = track;
    int votes[data::kNumShapes] = {};
    std::vector<double> areas, extents;
    for (int f : present) {
      ++votes[static_cast<int>(track[f].shape)];
      areas.push_back(track[f].area);
      extents.push_back(std::max(track[f].box_w, track[f].box_h) / scale);
    }
    o.shape = static_cast<data::Shape>(std::max_element(votes, votes + data::kNumShapes) - votes);
    o.shape_agreement = static_cast<double>(votes[static_cast<int>(o.shape)]) / present.size();
    o.mean_area = Mean(areas);
    std::nth_element(extents.begin(), extents.begin() + extents.size() / 2, extents.end());
    o.extent = extents[extents.size() / 2];
    o.size = o.extent < opt.size_threshold ? data::Size::kSmall : data::Size::kLarge;
    // Displacement between the mean positions of the first and last quarter of the present frames.
    const size_t q = std::max<size_t>(1, present.size() / 4);
    double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    for (size_t i = 0; i < q; ++i) {
      x0 += track[present[i]].cx, y0 += track[present[i]].cy;
      x1 += track[present[present.size() - 1 - i]].cx;
      y1 += track[present[present.size() - 1 - i]].cy;
    }
    o.dx = (x1 - x0) / q / width;
    o.dy = (y1 - y0) / q / height;
    if (std::max(std::abs(o.dx), std::abs(o.dy)) < opt.still_threshold) {
      o.motion = data::Motion::kStill;
    } else if (std::abs(o.dx) >= std::abs(o.dy)) {
      o.motion = o.dx < 0 ? data::Motion::kLeft : data::Motion::kRight;
    } else {
      o.motion = o.dy < 0 ? data::Motion::kUp : data::Motion::kDown;
    }
    d.objects.push_back(std::move(o));
  }
  std::sort(
      d.objects.begin(), d.objects.end(),
      [](const DetectedObject& a, const DetectedObject& b) { return a.mean_area > b.mean_area; });
  return d;
}

absl::StatusOr<Detection> DetectScene(const torch::Tensor& video, const DetectorOptions& options) {
  if (!video.defined() || video.dim() != 4 || video.size(3) != 3 ||
      video.scalar_type() != torch::kUInt8 || !video.device().is_cpu() || video.size(0) < 1 ||
      video.size(1) < 1 || video.size(2) < 1) {
    return absl::InvalidArgumentError(
        "DetectScene needs a CPU uint8 video tensor [F, H, W, 3] with F, H, W >= 1");
  }
  const torch::Tensor v = video.contiguous();
  return DetectScene(v.data_ptr<uint8_t>(), static_cast<int>(v.size(0)),
                     static_cast<int>(v.size(1)), static_cast<int>(v.size(2)), options);
}

}  // namespace linvideo::core::eval

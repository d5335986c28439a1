#include "core/eval/metrics.h"

#include <algorithm>
#include <cmath>

#include "core/eval/detect.h"

namespace linvideo::core::eval {
namespace {

std::vector<double> Luma(const uint8_t* frame, int pixels) {
  std::vector<double> y(pixels);
  for (int i = 0; i < pixels; ++i) {
    y[i] = 0.299 * frame[i * 3] + 0.587 * frame[i * 3 + 1] + 0.114 * frame[i * 3 + 2];
  }
  return y;
}

// Summed-area table with a zero first row/column: S[(y+1)*(w+1) + x+1] = sum of v[0..y][0..x].
std::vector<double> Integral(const std::vector<double>& v, int height, int width) {
  std::vector<double> s(static_cast<size_t>(height + 1) * (width + 1), 0.0);
  for (int y = 0; y < height; ++y) {
    double row = 0;
    for (int x = 0; x < width; ++x) {
      row += v[static_cast<size_t>(y) * width + x];
      s[static_cast<size_t>(y + 1) * (width + 1) + x + 1] =
          s[static_cast<size_t>(y) * (width + 1) + x + 1] + row;
    }
  }
  return s;
}

double BoxSum(const std::vector<double>& s, int width, int y0, int x0, int y1, int x1) {
  const size_t w = width + 1;
  return s[y1 * w + x1] - s[y0 * w + x1] - s[y1 * w + x0] + s[y0 * w + x0];
}

}  // namespace

std::vector<double> FramePsnr(const uint8_t* a, const uint8_t* b, int frames, int height,
                              int width) {
  std::vector<double> out;
  const size_t n = static_cast<size_t>(height) * width * 3;
  for (int f = 0; f < frames; ++f) {
    double se = 0;
    for (size_t i = 0; i < n; ++i) {
      const double d = static_cast<double>(a[f * n + i]) - b[f * n + i];
      se += d * d;
    }
    const double mse = se / n;
    out.push_back(mse > 0 ? std::min(kMaxPsnr, 10.0 * std::log10(255.0 * 255.0 / mse)) : kMaxPsnr);
  }
  return out;
}

std::vector<double> FrameSsim(const uint8_t* a, const uint8_t* b, int frames, int height,
                              int width) {
  const int pixels = height * width;
  const int win_h = std::min(7, height), win_w = std::min(7, width);
  const double c1 = (0.01 * 255) * (0.01 * 255), c2 = (0.03 * 255) * (0.03 * 255);
  const double n = static_cast<double>(win_h) * win_w;
  // Sample covariance normalisation (N / (N - 1)) as scikit-image does.
  const double cov_norm = n > 1 ? n / (n - 1) : 1.0;
  std::vector<double> out;
  for (int f = 0; f < frames; ++f) {
    const std::vector<double> x = Luma(a + static_cast<size_t>(f) * pixels * 3, pixels);
    const std::vector<double> y = Luma(b + static_cast<size_t>(f) * pixels * 3, pixels);
    std::vector<double> xx(pixels), yy(pixels), xy(pixels);
    for (int i = 0; i < pixels; ++i) xx[i] = x[i] * x[i], yy[i] = y[i] * y[i], xy[i] = x[i] * y[i];
    const auto sx = Integral(x, height, width), sy = Integral(y, height, width);
    const auto sxx = Integral(xx, height, width), syy = Integral(yy, height, width);
    const auto sxy = Integral(xy, height, width);
    double total = 0;
    int count = 0;
    for (int y0 = 0; y0 + win_h <= height; ++y0) {
      for (int x0 = 0; x0 + win_w <= width; ++x0) {
        const int y1 = y0 + win_h, x1 = x0 + win_w;
        const double mx = BoxSum(sx, width, y0, x0, y1, x1) / n;
        const double my = BoxSum(sy, width, y0, x0, y1, x1) / n;
        const double vx = cov_norm * (BoxSum(sxx, width, y0, x0, y1, x1) / n - mx * mx);
        const double vy = cov_norm * (BoxSum(syy, width, y0, x0, y1, x1) / n - my * my);
        const double cxy = cov_norm * (BoxSum(sxy, width, y0, x0, y1, x1) / n - mx * my);
        total +=
            ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
        ++count;
      }
    }
    out.push_back(count > 0 ? total / count : 1.0);
  }
  return out;
}

double EdgeSharpness(const uint8_t* rgb, int frames, int height, int width,
                     const data::Rgb& background, const data::Rgb& color,
                     const std::vector<FrameObject>& track) {
  const int pixels = height * width;
  std::vector<double> alpha(pixels);
  double total = 0;
  int64_t count = 0;
  for (int f = 0; f < frames && f < static_cast<int>(track.size()); ++f) {
    const FrameObject& box = track[f];
    if (!box.present) continue;
    const uint8_t* frame = rgb + static_cast<size_t>(f) * pixels * 3;
    const int y_lo = std::max(1, box.box_y - 2),
              y_hi = std::min(height - 2, box.box_y + box.box_h + 1);
    const int x_lo = std::max(1, box.box_x - 2),
              x_hi = std::min(width - 2, box.box_x + box.box_w + 1);
    for (int y = y_lo - 1; y <= y_hi + 1; ++y) {
      for (int x = x_lo - 1; x <= x_hi + 1; ++x) {
        double res;
        BlendAlpha(frame + (y * width + x) * 3, background, color, &alpha[y * width + x], &res);
      }
    }
    for (int y = y_lo; y <= y_hi; ++y) {
      for (int x = x_lo; x <= x_hi; ++x) {
        const int i = y * width + x;
        if (alpha[i] < 0.5) continue;
        if (alpha[i - 1] >= 0.5 && alpha[i + 1] >= 0.5 && alpha[i - width] >= 0.5 &&
            alpha[i + width] >= 0.5) {
          continue;
        }
        const double gx = std::abs(alpha[i + 1] - alpha[i - 1]) / 2;
        const double gy = std::abs(alpha[i + width] - alpha[i - width]) / 2;
        total += std::max(gx, gy);
        ++count;
      }
    }
  }
  return count > 0 ? total / count : 0.0;
}

}  // namespace linvideo::core::eval

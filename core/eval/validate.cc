#include "core/eval/validate.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/data/prompt.h"
#include "core/data/render.h"
#include "core/data/sampler.h"

namespace linvideo::core::eval {
namespace {

// Separable box blur of one RGB frame in place (edges clamp).
void BoxBlur(uint8_t* frame, int height, int width, int r) {
  std::vector<float> tmp(static_cast<size_t>(height) * width * 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int k = 0; k < 3; ++k) {
        float s = 0;
        for (int d = -r; d <= r; ++d) {
          s += frame[(y * width + std::clamp(x + d, 0, width - 1)) * 3 + k];
        }
        tmp[(y * width + x) * 3 + k] = s / (2 * r + 1);
      }
    }
  }
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int k = 0; k < 3; ++k) {
        float s = 0;
        for (int d = -r; d <= r; ++d)
          s += tmp[(std::clamp(y + d, 0, height - 1) * width + x) * 3 + k];
        frame[(y * width + x) * 3 + k] = static_cast<uint8_t>(std::lrint(s / (2 * r + 1)));
      }
    }
  }
}

void Perturb(const Perturbation& p, uint64_t seed, int frames, int height, int width,
             uint8_t* rgb) {
  const size_t frame_bytes = static_cast<size_t>(height) * width * 3;
  if (p.blur_radius > 0) {
    for (int f = 0; f < frames; ++f) BoxBlur(rgb + f * frame_bytes, height, width, p.blur_radius);
  }
  if (p.noise_std > 0) {
    data::Rng rng(seed * 0x2545f4914f6cdd1dULL + 1);
    for (size_t i = 0; i < frame_bytes * frames; ++i) {
      // Box-Muller (one of the pair).
      const double u1 = std::max(rng.Uniform(), 1e-12), u2 = rng.Uniform();
      const double g = std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
      rgb[i] = static_cast<uint8_t>(std::clamp(std::lrint(rgb[i] + p.noise_std * g), 0L, 255L));
    }
  }
}

}  // namespace

DetectorValidation ValidateDetectors(int count, uint64_t seed, int frames, int height, int width,
                                     const DetectorOptions& options,
                                     const Perturbation& perturbation) {
  DetectorValidation v;
  std::vector<uint8_t> rgb(static_cast<size_t>(frames) * height * width * 3);
  std::vector<VideoScore> scores;
  for (int i = 0; i < count; ++i) {
    const data::Split split = i % 4 == 3 ? data::Split::kHeldOut : data::Split::kTrain;
    const data::SceneSpec spec = data::SampleScene(seed + i, split);
    if (!data::RenderInto(spec, frames, height, width, rgb.data()).ok()) continue;
    Perturb(perturbation, seed + i, frames, height, width, rgb.data());
    const Detection d = DetectScene(rgb.data(), frames, height, width, options);
    const Adherence a = ScoreAdherence(d, spec);
    ++v.clips;
    Adherence& m = v.accuracy;
    m.background += a.background, m.color += a.color, m.shape += a.shape;
    m.motion += a.motion, m.size += a.size, m.count += a.count, m.all += a.all;
    if (a.all < 1 && v.failures.size() < 20) {
      std::string what;
      for (const auto& [name, value] : {std::pair<const char*, double>{"background", a.background},
                                        {"colour", a.color},
                                        {"shape", a.shape},
                                        {"motion", a.motion},
                                        {"size", a.size},
                                        {"count", a.count}}) {
        if (value < 1) absl::StrAppend(&what, what.empty() ? "" : ", ", name);
      }
      std::string seen;
      for (const DetectedObject& o : d.objects) {
        const FrameObject* first = nullptr;
        for (const FrameObject& t : o.track) {
          if (t.present && first == nullptr) first = &t;
        }
        absl::StrAppend(&seen, seen.empty() ? "" : "; ", data::Name(o.size), " ",
                        data::Name(o.color), " ", data::Name(o.shape), " ", data::Name(o.motion),
                        " (first frame fill ", first ? first->fill : 0.0, " offset ",
                        first ? first->offset_y : 0.0, ", extent ", o.extent, ", d ", o.dx, ",",
                        o.dy, ")");
      }
      v.failures.push_back(absl::StrCat(data::Prompt(spec), ": wrong ", what, " [detected ",
                                        data::Name(d.background), " bg; ", seen, "]"));
    }
  }
  if (v.clips > 0) {
    Adherence& m = v.accuracy;
    for (double* x : {&m.background, &m.color, &m.shape, &m.motion, &m.size, &m.count, &m.all}) {
      *x /= v.clips;
    }
  }
  return v;
}

}  // namespace linvideo::core::eval

#include "core/eval/validate.h"

#include "absl/strings/str_cat.h"
#include "core/data/prompt.h"
#include "core/data/render.h"
#include "core/data/sampler.h"

namespace linvideo::core::eval {

DetectorValidation ValidateDetectors(int count, uint64_t seed, int frames, int height, int width,
                                     const DetectorOptions& options) {
  DetectorValidation v;
  std::vector<uint8_t> rgb(static_cast<size_t>(frames) * height * width * 3);
  std::vector<VideoScore> scores;
  for (int i = 0; i < count; ++i) {
    const data::Split split = i % 4 == 3 ? data::Split::kHeldOut : data::Split::kTrain;
    const data::SceneSpec spec = data::SampleScene(seed + i, split);
    if (!data::RenderInto(spec, frames, height, width, rgb.data()).ok()) continue;
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

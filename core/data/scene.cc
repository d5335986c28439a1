#include "core/data/scene.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace linvideo::core::data {
namespace {

constexpr const char* kShapeNames[kNumShapes] = {"circle", "square", "triangle", "diamond"};
constexpr const char* kColorNames[kNumColors] = {"red",    "green",  "blue",
                                                 "yellow", "purple", "orange"};
constexpr const char* kBackgroundNames[kNumBackgrounds] = {"white", "black", "gray"};
constexpr const char* kMotionNames[kNumMotions] = {"left", "right", "up", "down", "still"};
constexpr const char* kSizeNames[kNumSizes] = {"small", "large"};

// Saturated, mutually distant colours; the backgrounds are neutral so every object contrasts with
// every background (nearest distance between an object colour and a background is > 100).
constexpr Rgb kColors[kNumColors] = {{220, 40, 40},  {40, 170, 60},  {40, 80, 220},
                                     {240, 210, 40}, {150, 60, 190}, {245, 140, 30}};
constexpr Rgb kBackgrounds[kNumBackgrounds] = {{245, 245, 245}, {20, 20, 20}, {120, 120, 120}};

template <typename E, size_t N>
absl::StatusOr<E> ParseWord(const std::string& word, const char* const (&names)[N],
                            const char* what) {
  for (size_t i = 0; i < N; ++i) {
    if (word == names[i]) return static_cast<E>(i);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      what, " '", word, "' is not known; allowed: ", absl::StrJoin(names, names + N, ", ")));
}

}  // namespace

Rgb ColorRgb(Color color) { return kColors[static_cast<int>(color)]; }
Rgb BackgroundRgb(Background background) { return kBackgrounds[static_cast<int>(background)]; }

const char* Name(Shape v) { return kShapeNames[static_cast<int>(v)]; }
const char* Name(Color v) { return kColorNames[static_cast<int>(v)]; }
const char* Name(Background v) { return kBackgroundNames[static_cast<int>(v)]; }
const char* Name(Motion v) { return kMotionNames[static_cast<int>(v)]; }
const char* Name(Size v) { return kSizeNames[static_cast<int>(v)]; }

absl::StatusOr<Shape> ParseShape(const std::string& w) {
  return ParseWord<Shape>(w, kShapeNames, "shape");
}
absl::StatusOr<Color> ParseColor(const std::string& w) {
  return ParseWord<Color>(w, kColorNames, "colour");
}
absl::StatusOr<Background> ParseBackground(const std::string& w) {
  return ParseWord<Background>(w, kBackgroundNames, "background");
}
absl::StatusOr<Motion> ParseMotion(const std::string& w) {
  return ParseWord<Motion>(w, kMotionNames, "motion");
}
absl::StatusOr<Size> ParseSize(const std::string& w) {
  return ParseWord<Size>(w, kSizeNames, "size");
}

// A token of the default model covers 16x16 px (8x VAE, 2x2 patches) at 128 px: a small object
// spans ~2 tokens, a large one ~3. At 0.09 / 0.16 the VAE rounded small squares, triangles and
// diamonds into blobs (held-out reconstructions: 38% shape adherence).
double RadiusFraction(Size size) { return size == Size::kSmall ? 0.12 : 0.20; }

void MotionDirection(Motion motion, double* dx, double* dy) {
  *dx = motion == Motion::kLeft ? -1.0 : motion == Motion::kRight ? 1.0 : 0.0;
  *dy = motion == Motion::kUp ? -1.0 : motion == Motion::kDown ? 1.0 : 0.0;
}

void ObjectCenter(const ObjectSpec& object, double t, double* x, double* y) {
  double dx, dy;
  MotionDirection(object.motion, &dx, &dy);
  *x = object.x0 + dx * object.travel * t;
  *y = object.y0 + dy * object.travel * t;
}

void CenterPath(ObjectSpec* object) {
  double dx, dy;
  MotionDirection(object->motion, &dx, &dy);
  object->x0 = 0.5 - dx * object->travel / 2;
  object->y0 = 0.5 - dy * object->travel / 2;
}

absl::Status ValidateScene(const SceneSpec& spec) {
  if (spec.objects.empty() || spec.objects.size() > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("a scene has ", spec.objects.size(), " objects; allowed: 1 or 2"));
  }
  if (spec.objects.size() == 2) {
    if (spec.objects[0].color == spec.objects[1].color) {
      return absl::InvalidArgumentError("the two objects of a scene must have different colours");
    }
    if (spec.objects[1].motion != Motion::kStill) {
      return absl::InvalidArgumentError("the second object of a scene must be still");
    }
  }
  for (const ObjectSpec& o : spec.objects) {
    if (!(o.travel >= 0.0 && o.travel <= 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("object travel ", o.travel, " is not allowed; use 0..1"));
    }
    const double r = RadiusFraction(o.size);
    for (double t : {0.0, 1.0}) {
      double x, y;
      ObjectCenter(o, t, &x, &y);
      // 1e-6 slack: layouts computed as r + margin must not fail on rounding.
      if (x < r - 1e-6 || x > 1 - r + 1e-6 || y < r - 1e-6 || y > 1 - r + 1e-6) {
        return absl::InvalidArgumentError(absl::StrCat(
            "a ", Name(o.size), " ", Name(o.shape), " leaves the frame (centre ", x, ", ", y,
            " at t=", t, "); centres must stay within [", r, ", ", 1 - r, "]"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace linvideo::core::data

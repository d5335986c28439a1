#pragma once
// Shapes world scene description: the attributes a prompt talks about (shape, colour, size,
// motion, background) plus the layout the prompt does not fix (start position, travel distance).
//
// Plain values; no global mutable state, safe to use from any thread.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace linvideo::core::data {

enum class Shape { kCircle, kSquare, kTriangle, kDiamond };
enum class Color { kRed, kGreen, kBlue, kYellow, kPurple, kOrange };
enum class Background { kWhite, kBlack, kGray };
enum class Motion { kLeft, kRight, kUp, kDown, kStill };
enum class Size { kSmall, kLarge };

inline constexpr int kNumShapes = 4;
inline constexpr int kNumColors = 6;
inline constexpr int kNumBackgrounds = 3;
inline constexpr int kNumMotions = 5;
inline constexpr int kNumSizes = 2;

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb& o) const { return r == o.r && g == o.g && b == o.b; }
};

// The fixed palettes (object colours and backgrounds are disjoint and far apart in RGB).
Rgb ColorRgb(Color color);
Rgb BackgroundRgb(Background background);

// Lower-case words used in prompts ("circle", "red", "white", "left", "small").
const char* Name(Shape v);
const char* Name(Color v);
const char* Name(Background v);
const char* Name(Motion v);
const char* Name(Size v);

// Inverse of Name(); INVALID_ARGUMENT lists the allowed words.
absl::StatusOr<Shape> ParseShape(const std::string& word);
absl::StatusOr<Color> ParseColor(const std::string& word);
absl::StatusOr<Background> ParseBackground(const std::string& word);
absl::StatusOr<Motion> ParseMotion(const std::string& word);
absl::StatusOr<Size> ParseSize(const std::string& word);

// Half-extent of an object (every shape fits a 2r x 2r box) as a fraction of min(height, width).
double RadiusFraction(Size size);
// Unit direction of a motion in image coordinates (x right, y down); (0, 0) for kStill.
void MotionDirection(Motion motion, double* dx, double* dy);

struct ObjectSpec {
  Shape shape = Shape::kCircle;
  Color color = Color::kRed;
  Size size = Size::kLarge;
  Motion motion = Motion::kStill;
  // Layout: centre at the first frame, x as a fraction of the width and y of the height, and the
  // distance travelled by the last frame along the motion direction (fraction of the frame).
  double x0 = 0.5, y0 = 0.5;
  double travel = 0.4;
};

// One or two objects on a uniform background. objects[0] is the prompt's subject; a second
// object, when present, is still, has another colour, and never overlaps the first one's path.
struct SceneSpec {
  Background background = Background::kWhite;
  std::vector<ObjectSpec> objects;
};

// Centre of `object` at normalised time t in [0, 1] (fractions of width/height).
void ObjectCenter(const ObjectSpec& object, double t, double* x, double* y);

// Sets x0/y0 so that the path is centred in the frame (the layout of the evaluation prompts).
void CenterPath(ObjectSpec* object);

// Checks 1..2 objects, distinct colours, a still second object, travel >= 0 (0 when still), and
// that every object stays inside the frame (with square frames) on its whole path.
absl::Status ValidateScene(const SceneSpec& spec);

}  // namespace linvideo::core::data

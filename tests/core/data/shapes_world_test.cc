// Shapes world generator: determinism, rendered attributes match the spec, prompts, held-out split.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include "core/data/prompt.h"
#include "core/data/render.h"
#include "core/data/sampler.h"
#include "core/data/scene.h"

namespace linvideo::core::data {
namespace {

// Coverage-weighted centroid (pixels) of the object of colour fg in frame f.
struct Blob {
  double cx = 0, cy = 0, count = 0;
};
Blob Measure(const torch::Tensor& video, int f, const Rgb& bg, const Rgb& fg) {
  Blob b;
  const torch::Tensor frame = video[f];
  auto a = frame.accessor<uint8_t, 3>();
  for (int y = 0; y < a.size(0); ++y) {
    for (int x = 0; x < a.size(1); ++x) {
      // Coverage from the red channel (every test object differs from the background there).
      const double w = std::abs(a[y][x][0] - bg.r) / std::abs(static_cast<double>(fg.r - bg.r));
      b.cx += w * (x + 0.5), b.cy += w * (y + 0.5), b.count += w;
    }
  }
  b.cx /= b.count, b.cy /= b.count;
  return b;
}

SceneSpec OneObject(Shape shape, Color color, Motion motion, Size size = Size::kLarge,
                    Background bg = Background::kWhite) {
  SceneSpec s;
  s.background = bg;
  ObjectSpec o;
  o.shape = shape, o.color = color, o.motion = motion, o.size = size;
  o.travel = motion == Motion::kStill ? 0.0 : 0.4;
  CenterPath(&o);
  s.objects.push_back(o);
  return s;
}

TEST(ShapesWorldTest, SameSeedGivesIdenticalBytes) {
  for (uint64_t seed : {0ULL, 1ULL, 12345ULL}) {
    for (Split split : {Split::kTrain, Split::kHeldOut}) {
      const Example a = SampleExample(seed, split), b = SampleExample(seed, split);
      EXPECT_EQ(a.prompt, b.prompt);
      auto va = Render(a.spec, 9, 64, 64), vb = Render(b.spec, 9, 64, 64);
      ASSERT_TRUE(va.ok() && vb.ok());
      EXPECT_TRUE(torch::equal(*va, *vb));
    }
  }
  // Different seeds give different scenes (not a constant generator).
  std::set<std::string> prompts;
  for (uint64_t seed = 0; seed < 50; ++seed)
    prompts.insert(SampleExample(seed, Split::kTrain).prompt);
  EXPECT_GT(prompts.size(), 40u);
}

TEST(ShapesWorldTest, CentroidMovesTheRightWayAndColourIsTheSpecs) {
  struct Case {
    Motion motion;
    double dx, dy;
  };
  for (const Case& c :
       {Case{Motion::kLeft, -1, 0}, Case{Motion::kRight, 1, 0}, Case{Motion::kUp, 0, -1},
        Case{Motion::kDown, 0, 1}, Case{Motion::kStill, 0, 0}}) {
    const SceneSpec spec = OneObject(Shape::kSquare, Color::kBlue, c.motion);
    auto video = Render(spec, 17, 128, 128);
    ASSERT_TRUE(video.ok()) << video.status();
    const Rgb bg = BackgroundRgb(spec.background);
    const Rgb fg = ColorRgb(Color::kBlue);
    const Blob first = Measure(*video, 0, bg, fg), last = Measure(*video, 16, bg, fg);
    // Travel 0.4 of 128 px = 51.2 px along the motion axis, nothing across it.
    EXPECT_NEAR(last.cx - first.cx, c.dx * 51.2, 0.05) << Name(c.motion);
    EXPECT_NEAR(last.cy - first.cy, c.dy * 51.2, 0.05) << Name(c.motion);
    // The object's centre pixel has exactly the spec's colour.
    const torch::Tensor frame = (*video)[16];
    auto a = frame.accessor<uint8_t, 3>();
    const Rgb want = ColorRgb(Color::kBlue);
    const int x = static_cast<int>(last.cx), y = static_cast<int>(last.cy);
    EXPECT_EQ(a[y][x][0], want.r);
    EXPECT_EQ(a[y][x][1], want.g);
    EXPECT_EQ(a[y][x][2], want.b);
    // Corner pixel is background.
    EXPECT_EQ(a[0][0][0], bg.r);
  }
}

TEST(ShapesWorldTest, AreasMatchTheShapesAndEdgesAreAntiAliased) {
  // Large object at 128 px: r = 0.20 * 128 = 25.6 px. Coverage sums to the analytic area.
  const double r = RadiusFraction(Size::kLarge) * 128;
  struct Case {
    Shape shape;
    double area;
  };
  for (const Case& c : {Case{Shape::kCircle, M_PI * r * r}, Case{Shape::kSquare, 4 * r * r},
                        Case{Shape::kTriangle, 2 * r * r}, Case{Shape::kDiamond, 2 * r * r}}) {
    const SceneSpec spec =
        OneObject(c.shape, Color::kRed, Motion::kStill, Size::kLarge, Background::kBlack);
    auto video = Render(spec, 1, 128, 128);
    ASSERT_TRUE(video.ok());
    // Coverage from the red channel: bg 20, object 220.
    const torch::Tensor cov = ((*video).select(3, 0).to(torch::kFloat) - 20.0f) / 200.0f;
    EXPECT_NEAR(cov.sum().item<double>(), c.area, 0.02 * c.area) << Name(c.shape);
    // Some partially covered pixels exist (anti-aliasing), except along the square's axis-aligned
    // edges at integer positions — the square here is centred at 64 +- 20.48, so it has them too.
    const int64_t partial = ((cov > 0.05) & (cov < 0.95)).sum().item<int64_t>();
    EXPECT_GT(partial, 20) << Name(c.shape);
  }
}

TEST(ShapesWorldTest, PromptsNameEveryAttribute) {
  SceneSpec spec = OneObject(Shape::kCircle, Color::kRed, Motion::kLeft, Size::kSmall);
  EXPECT_EQ(Prompt(spec, 0), "a small red circle moves to the left on a white background");
  EXPECT_EQ(Prompt(spec, 1), "a little red circle slides left over a white backdrop");
  ObjectSpec second;
  second.shape = Shape::kSquare, second.color = Color::kOrange, second.size = Size::kLarge;
  second.travel = 0, second.x0 = 0.2, second.y0 = 0.8;
  spec.objects.push_back(second);
  EXPECT_EQ(Prompt(spec, 0),
            "a small red circle moves to the left and a large orange square stays still on a "
            "white background");
  EXPECT_EQ(Prompt(spec, 6), Prompt(spec, 0));  // modulo kNumParaphrases
  std::set<std::string> distinct;
  for (int p = 0; p < kNumParaphrases; ++p) {
    const std::string text = Prompt(spec, p);
    distinct.insert(text);
    for (const char* word : {"red", "circle", "orange", "square", "white"}) {
      EXPECT_NE(text.find(word), std::string::npos) << text;
    }
  }
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kNumParaphrases));
  const auto vocab = PromptVocabulary();
  EXPECT_GT(vocab.size(), 40u);
  EXPECT_LT(vocab.size(), 200u);
}

TEST(ShapesWorldTest, HeldOutTriplesNeverInTrainingSplit) {
  int second_objects = 0;
  int counts[kNumColors][kNumShapes][kNumMotions] = {};
  for (uint64_t seed = 0; seed < 10000; ++seed) {
    const SceneSpec spec = SampleScene(seed, Split::kTrain);
    ASSERT_TRUE(ValidateScene(spec).ok()) << ValidateScene(spec);
    ASSERT_FALSE(HasHeldOutObject(spec)) << Prompt(spec);
    const ObjectSpec& o = spec.objects[0];
    ++counts[static_cast<int>(o.color)][static_cast<int>(o.shape)][static_cast<int>(o.motion)];
    second_objects += spec.objects.size() == 2;
  }
  // Every non-held-out triple does appear (the split is not trivially empty).
  for (int c = 0; c < kNumColors; ++c)
    for (int s = 0; s < kNumShapes; ++s)
      for (int m = 0; m < kNumMotions; ++m) {
        const bool held =
            IsHeldOut(static_cast<Color>(c), static_cast<Shape>(s), static_cast<Motion>(m));
        EXPECT_EQ(counts[c][s][m] == 0, held) << c << " " << s << " " << m;
      }
  EXPECT_GT(second_objects, 1500);
  EXPECT_LT(second_objects, 3000);
  for (uint64_t seed = 0; seed < 1000; ++seed) {
    const SceneSpec spec = SampleScene(seed, Split::kHeldOut);
    ASSERT_TRUE(ValidateScene(spec).ok());
    EXPECT_TRUE(IsHeldOut(spec.objects[0]));
  }
}

TEST(ShapesWorldTest, LayoutJitterCentresTheSubjectPath) {
  SamplerOptions centred;
  centred.layout_jitter = 0.1;
  double max_offset = 0, max_offset_random = 0;
  int seconds = 0;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    const SceneSpec spec = SampleScene(seed, Split::kTrain, centred);
    ASSERT_TRUE(ValidateScene(spec).ok()) << ValidateScene(spec);
    ASSERT_FALSE(HasHeldOutObject(spec));
    // The path's midpoint is the frame centre up to the jitter on each axis.
    double xa, ya, xb, yb;
    ObjectCenter(spec.objects[0], 0.0, &xa, &ya);
    ObjectCenter(spec.objects[0], 1.0, &xb, &yb);
    const double offset = std::max(std::abs((xa + xb) / 2 - 0.5), std::abs((ya + yb) / 2 - 0.5));
    ASSERT_LE(offset, 0.1 + 1e-9) << Prompt(spec);
    max_offset = std::max(max_offset, offset);
    seconds += spec.objects.size() == 2;
    // Same seed, random layouts: same attributes, paths anywhere.
    const SceneSpec random = SampleScene(seed, Split::kTrain);
    EXPECT_EQ(random.background, spec.background);
    EXPECT_EQ(random.objects[0].color, spec.objects[0].color);
    EXPECT_EQ(random.objects[0].shape, spec.objects[0].shape);
    EXPECT_EQ(random.objects[0].motion, spec.objects[0].motion);
    ObjectCenter(random.objects[0], 0.0, &xa, &ya);
    ObjectCenter(random.objects[0], 1.0, &xb, &yb);
    max_offset_random = std::max(
        max_offset_random, std::max(std::abs((xa + xb) / 2 - 0.5), std::abs((ya + yb) / 2 - 0.5)));
  }
  EXPECT_GT(max_offset, 0.08);  // the jitter is used
  EXPECT_GT(max_offset_random, 0.2);
  EXPECT_GT(seconds, 200);  // second objects still find room beside the centred path
  centred.layout_jitter = 0.0;
  const SceneSpec exact = SampleScene(7, Split::kTrain, centred);
  ObjectSpec expected = exact.objects[0];
  CenterPath(&expected);
  EXPECT_NEAR(exact.objects[0].x0, expected.x0, 1e-12);
  EXPECT_NEAR(exact.objects[0].y0, expected.y0, 1e-12);
}

TEST(ShapesWorldTest, RejectsBadScenesAndSizes) {
  SceneSpec spec;
  EXPECT_FALSE(Render(spec, 1, 32, 32).ok());  // no objects
  spec = OneObject(Shape::kCircle, Color::kRed, Motion::kLeft);
  spec.objects[0].x0 = 0.2;  // leaves the frame to the left
  EXPECT_FALSE(ValidateScene(spec).ok());
  spec = OneObject(Shape::kCircle, Color::kRed, Motion::kLeft);
  EXPECT_FALSE(Render(spec, 0, 32, 32).ok());
  EXPECT_TRUE(ParseColor("purple").ok());
  EXPECT_FALSE(ParseColor("pink").ok());
}

TEST(ShapesWorldTest, RenderingIsFast) {
  const SceneSpec spec = SampleScene(7, Split::kTrain);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Render(spec, 33, 128, 128).ok());
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
      10;
  std::cout << "render 33x128x128: " << ms << " ms per clip\n";
}

}  // namespace
}  // namespace linvideo::core::data

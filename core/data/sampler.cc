#include "core/data/sampler.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/data/prompt.h"

namespace linvideo::core::data {
namespace {

// Distinct streams for the two splits, so seed s gives unrelated scenes in each.
constexpr uint64_t kSplitSalt[2] = {0x9a3c5e7f1b2d4c68ULL, 0x1f6e8d2c4b3a5968ULL};

// Places an object with a random path that stays `margin` inside the frame: anywhere, or (when
// `jitter` >= 0) centred in the frame and shifted by up to +-jitter.
void SampleLayout(Rng* rng, const SamplerOptions& opt, double jitter, ObjectSpec* o) {
  const double r = RadiusFraction(o->size) + opt.margin;
  o->travel = o->motion == Motion::kStill
                  ? 0.0
                  : std::min(rng->Uniform(opt.min_travel, opt.max_travel), 1 - 2 * r);
  double dx, dy;
  MotionDirection(o->motion, &dx, &dy);
  if (jitter >= 0) {
    CenterPath(o);
    // The start may move as far as the path still fits: [r, 1 - r - travel] along the motion.
    const auto shifted = [&](double start, double d) {
      const double lo = r + (d < 0 ? o->travel : 0.0), hi = 1 - r - (d > 0 ? o->travel : 0.0);
      return std::clamp(start + rng->Uniform(-jitter, jitter), lo, std::max(lo, hi));
    };
    o->x0 = shifted(o->x0, dx);
    o->y0 = shifted(o->y0, dy);
    return;
  }
  if (o->motion == Motion::kStill) {
    o->x0 = rng->Uniform(r, 1 - r);
    o->y0 = rng->Uniform(r, 1 - r);
    return;
  }
  // Along the motion axis the start must leave room for the travel; across it, anywhere.
  const double along_lo = r, along_hi = 1 - r - o->travel;
  const double along = rng->Uniform(along_lo, std::max(along_lo, along_hi));
  const double across = rng->Uniform(r, 1 - r);
  if (dx != 0) {
    o->x0 = dx > 0 ? along : 1 - along;
    o->y0 = across;
  } else {
    o->y0 = dy > 0 ? along : 1 - along;
    o->x0 = across;
  }
}

// Axis-aligned box (normalised) swept by an object over its path, grown by `pad`.
struct Box {
  double x0, y0, x1, y1;
};
Box SweptBox(const ObjectSpec& o, double pad) {
  double xa, ya, xb, yb;
  ObjectCenter(o, 0.0, &xa, &ya);
  ObjectCenter(o, 1.0, &xb, &yb);
  const double r = RadiusFraction(o.size) + pad;
  return {std::min(xa, xb) - r, std::min(ya, yb) - r, std::max(xa, xb) + r, std::max(ya, yb) + r};
}
bool Overlap(const Box& a, const Box& b) {
  return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
}

ObjectSpec SampleObject(Rng* rng) {
  ObjectSpec o;
  o.shape = static_cast<Shape>(rng->Below(kNumShapes));
  o.color = static_cast<Color>(rng->Below(kNumColors));
  o.size = static_cast<Size>(rng->Below(kNumSizes));
  o.motion = static_cast<Motion>(rng->Below(kNumMotions));
  return o;
}

}  // namespace

const char* Name(Split split) { return split == Split::kTrain ? "train" : "heldout"; }

absl::StatusOr<Split> ParseSplit(const std::string& word) {
  if (word == "train") return Split::kTrain;
  if (word == "heldout") return Split::kHeldOut;
  return absl::InvalidArgumentError(
      absl::StrCat("split '", word, "' is not known; allowed: train, heldout"));
}

const std::vector<Triple>& HeldOutTriples() {
  static const auto* kTriples = new std::vector<Triple>{
      {Color::kRed, Shape::kTriangle, Motion::kUp},
      {Color::kGreen, Shape::kCircle, Motion::kLeft},
      {Color::kBlue, Shape::kSquare, Motion::kDown},
      {Color::kYellow, Shape::kDiamond, Motion::kRight},
      {Color::kPurple, Shape::kSquare, Motion::kLeft},
      {Color::kOrange, Shape::kCircle, Motion::kUp},
      {Color::kRed, Shape::kDiamond, Motion::kDown},
      {Color::kBlue, Shape::kTriangle, Motion::kRight},
  };
  return *kTriples;
}

bool IsHeldOut(Color color, Shape shape, Motion motion) {
  for (const Triple& t : HeldOutTriples()) {
    if (t.color == color && t.shape == shape && t.motion == motion) return true;
  }
  return false;
}
bool IsHeldOut(const ObjectSpec& o) { return IsHeldOut(o.color, o.shape, o.motion); }
bool HasHeldOutObject(const SceneSpec& spec) {
  return std::any_of(spec.objects.begin(), spec.objects.end(),
                     [](const ObjectSpec& o) { return IsHeldOut(o); });
}

uint64_t Rng::Next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
double Rng::Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
double Rng::Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
int Rng::Below(int n) {
  // Multiply-shift: bias < n / 2^32, negligible for the tiny n used here.
  return static_cast<int>(((Next() >> 32) * static_cast<uint64_t>(n)) >> 32);
}

SceneSpec SampleScene(uint64_t seed, Split split, const SamplerOptions& options) {
  Rng rng(seed ^ kSplitSalt[split == Split::kTrain ? 0 : 1]);
  SceneSpec spec;
  spec.background = static_cast<Background>(rng.Below(kNumBackgrounds));
  ObjectSpec first;
  if (split == Split::kHeldOut) {
    const Triple& t = HeldOutTriples()[rng.Below(static_cast<int>(HeldOutTriples().size()))];
    first.color = t.color;
    first.shape = t.shape;
    first.motion = t.motion;
    first.size = static_cast<Size>(rng.Below(kNumSizes));
  } else {
    do {
      first = SampleObject(&rng);
    } while (IsHeldOut(first));
  }
  SampleLayout(&rng, options, options.layout_jitter, &first);
  spec.objects.push_back(first);

  if (rng.Uniform() < options.second_object_probability) {
    ObjectSpec second;
    second.motion = Motion::kStill;
    second.shape = static_cast<Shape>(rng.Below(kNumShapes));
    second.size = static_cast<Size>(rng.Below(kNumSizes));
    second.color = static_cast<Color>(rng.Below(kNumColors - 1));
    if (second.color >= first.color)
      second.color = static_cast<Color>(static_cast<int>(second.color) + 1);
    // Rejection-sample a position clear of the first object's whole path; give up (one object)
    // after a bounded number of tries so sampling always terminates.
    const Box path = SweptBox(first, 0.03);
    for (int attempt = 0; attempt < 64; ++attempt) {
      SampleLayout(&rng, options, /*jitter=*/-1.0, &second);
      if (!Overlap(path, SweptBox(second, 0.0))) {
        spec.objects.push_back(second);
        break;
      }
    }
  }
  return spec;
}

Example SampleExample(uint64_t seed, Split split, const SamplerOptions& options) {
  Example e;
  e.spec = SampleScene(seed, split, options);
  // A separate stream for the paraphrase so it does not shift the scene's draws.
  Rng rng(seed ^ 0x7f4a7c159e3779b9ULL);
  e.paraphrase = rng.Below(kNumParaphrases);
  e.prompt = Prompt(e.spec, e.paraphrase);
  return e;
}

}  // namespace linvideo::core::data

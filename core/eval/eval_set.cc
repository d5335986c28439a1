#include "core/eval/eval_set.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "core/data/prompt.h"
#include "core/data/sampler.h"

namespace linvideo::core::eval {
namespace {

using data::Background;
using data::Color;
using data::Motion;
using data::Shape;
using data::Size;

struct Row {
  Shape shape;
  Color color;
  Motion motion;
  Size size;
  Background background;
};

constexpr Row kSeen[] = {
    {Shape::kCircle, Color::kRed, Motion::kRight, Size::kLarge, Background::kWhite},
    {Shape::kSquare, Color::kGreen, Motion::kUp, Size::kSmall, Background::kBlack},
    {Shape::kTriangle, Color::kBlue, Motion::kLeft, Size::kLarge, Background::kGray},
    {Shape::kCircle, Color::kYellow, Motion::kDown, Size::kSmall, Background::kGray},
    {Shape::kDiamond, Color::kPurple, Motion::kStill, Size::kLarge, Background::kWhite},
    {Shape::kTriangle, Color::kOrange, Motion::kDown, Size::kLarge, Background::kBlack},
    {Shape::kSquare, Color::kRed, Motion::kLeft, Size::kSmall, Background::kGray},
    {Shape::kDiamond, Color::kGreen, Motion::kRight, Size::kLarge, Background::kWhite},
    {Shape::kCircle, Color::kBlue, Motion::kUp, Size::kSmall, Background::kWhite},
    {Shape::kTriangle, Color::kYellow, Motion::kStill, Size::kLarge, Background::kBlack},
    {Shape::kTriangle, Color::kPurple, Motion::kRight, Size::kLarge, Background::kGray},
    {Shape::kSquare, Color::kOrange, Motion::kLeft, Size::kSmall, Background::kWhite},
};

data::ObjectSpec Object(const Row& r) {
  data::ObjectSpec o;
  o.shape = r.shape, o.color = r.color, o.motion = r.motion, o.size = r.size;
  o.travel = r.motion == Motion::kStill ? 0.0 : 0.4;
  data::CenterPath(&o);
  return o;
}

data::ObjectSpec StillObject(Shape shape, Color color, Size size, double x, double y) {
  data::ObjectSpec o;
  o.shape = shape, o.color = color, o.size = size, o.motion = Motion::kStill;
  o.travel = 0, o.x0 = x, o.y0 = y;
  return o;
}

EvalCase MakeCase(const char* prefix, int index, data::SceneSpec spec, bool held_out) {
  EvalCase c;
  const data::ObjectSpec& o = spec.objects[0];
  char num[8];
  std::snprintf(num, sizeof(num), "%02d", index + 1);
  c.name = absl::StrCat(prefix, "-", num, "-", data::Name(o.color), "-", data::Name(o.shape), "-",
                        data::Name(o.motion));
  c.prompt = data::Prompt(spec, 0);
  c.spec = std::move(spec);
  c.held_out = held_out;
  return c;
}

}  // namespace

absl::StatusOr<PromptSet> ParsePromptSet(const std::string& word) {
  if (word == "seen") return PromptSet::kSeen;
  if (word == "heldout") return PromptSet::kHeldOut;
  if (word == "all") return PromptSet::kAll;
  return absl::InvalidArgumentError(
      absl::StrCat("prompt set '", word, "' is not known; allowed: seen, heldout, all"));
}

std::vector<EvalCase> EvalCases(PromptSet set) {
  std::vector<EvalCase> cases;
  if (set != PromptSet::kHeldOut) {
    for (int i = 0; i < static_cast<int>(std::size(kSeen)); ++i) {
      data::SceneSpec spec;
      spec.background = kSeen[i].background;
      spec.objects.push_back(Object(kSeen[i]));
      // Two scenes with a second, still object clear of the subject's horizontal path.
      // The subject's path moves off the centre line to leave a gap of ~0.09 of the frame.
      if (i == 10) {
        spec.objects[0].y0 = 0.58;
        spec.objects.push_back(StillObject(Shape::kCircle, Color::kGreen, Size::kSmall, 0.5, 0.17));
      } else if (i == 11) {
        spec.objects[0].y0 = 0.35;
        spec.objects.push_back(StillObject(Shape::kDiamond, Color::kBlue, Size::kLarge, 0.5, 0.76));
      }
      cases.push_back(MakeCase("seen", i, std::move(spec), false));
    }
  }
  if (set != PromptSet::kSeen) {
    const auto& triples = data::HeldOutTriples();
    for (int i = 0; i < static_cast<int>(triples.size()); ++i) {
      const Row row{triples[i].shape, triples[i].color, triples[i].motion,
                    i % 2 == 0 ? Size::kLarge : Size::kSmall,
                    static_cast<Background>(i % data::kNumBackgrounds)};
      data::SceneSpec spec;
      spec.background = row.background;
      spec.objects.push_back(Object(row));
      cases.push_back(MakeCase("heldout", i, std::move(spec), true));
    }
  }
  return cases;
}

const std::vector<uint64_t>& EvalSeeds() {
  static const auto* kSeeds =
      new std::vector<uint64_t>{42, 7, 1234, 2024, 99, 5, 77, 31337, 8, 1000};
  return *kSeeds;
}

}  // namespace linvideo::core::eval

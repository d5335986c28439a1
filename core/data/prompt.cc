#include "core/data/prompt.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace linvideo::core::data {
namespace {

// One paraphrase: size synonyms, finite motion phrases (indexed by Motion) and the frame around
// the clauses: "<lead><subject clauses><tail>" with `{bg}` replaced by the background word.
struct Template {
  const char* small;
  const char* large;
  const char* motion[kNumMotions];  // left, right, up, down, still
  const char* lead;
  const char* tail;
  const char* joiner;  // between the first and the second object's clause
};

constexpr Template kTemplates[kNumParaphrases] = {
    {"small",
     "large",
     {"moves to the left", "moves to the right", "moves up", "moves down", "stays still"},
     "",
     " on a {bg} background",
     " and "},
    {"little",
     "big",
     {"slides left", "slides right", "slides up", "slides down", "sits still"},
     "",
     " over a {bg} backdrop",
     " and "},
    {"small",
     "big",
     {"moving left", "moving right", "moving upward", "moving downward", "not moving"},
     "",
     " against a {bg} background",
     ", with "},
    {"small",
     "large",
     {"goes left", "goes right", "goes up", "goes down", "stays in place"},
     "on a {bg} background, ",
     "",
     " while "},
    {"tiny",
     "large",
     {"drifts leftward", "drifts rightward", "drifts upward", "drifts downward",
      "remains motionless"},
     "{bg} background: ",
     "",
     "; "},
    {"small",
     "huge",
     {"travels to the left", "travels to the right", "travels upward", "travels downward",
      "does not move"},
     "",
     " in front of a {bg} wall",
     " and "},
};

std::string WithArticle(const std::string& phrase) {
  const char c = phrase.empty() ? 'x' : phrase[0];
  const bool vowel = c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u';
  return absl::StrCat(vowel ? "an " : "a ", phrase);
}

std::string Clause(const Template& t, const ObjectSpec& o) {
  const std::string noun = absl::StrCat(o.size == Size::kSmall ? t.small : t.large, " ",
                                        Name(o.color), " ", Name(o.shape));
  return absl::StrCat(WithArticle(noun), " ", t.motion[static_cast<int>(o.motion)]);
}

std::string ReplaceBg(const char* text, const char* bg) {
  std::string s = text;
  const size_t at = s.find("{bg}");
  if (at != std::string::npos) s.replace(at, 4, bg);
  return s;
}

}  // namespace

std::string Prompt(const SceneSpec& spec, int paraphrase) {
  const int index = ((paraphrase % kNumParaphrases) + kNumParaphrases) % kNumParaphrases;
  const Template& t = kTemplates[index];
  const char* bg = Name(spec.background);
  std::string body;
  for (size_t i = 0; i < spec.objects.size(); ++i) {
    if (i > 0) absl::StrAppend(&body, t.joiner);
    absl::StrAppend(&body, Clause(t, spec.objects[i]));
  }
  return absl::StrCat(ReplaceBg(t.lead, bg), body, ReplaceBg(t.tail, bg));
}

std::vector<std::string> PromptVocabulary() {
  std::set<std::string> words = {"a", "an"};
  auto add = [&](const std::string& text) {
    for (absl::string_view w : absl::StrSplit(text, absl::ByAnyChar(" ,;:"), absl::SkipEmpty())) {
      if (w != "{bg}") words.insert(std::string(w));
    }
  };
  for (const Template& t : kTemplates) {
    add(t.small);
    add(t.large);
    for (const char* m : t.motion) add(m);
    add(t.lead);
    add(t.tail);
    add(t.joiner);
  }
  for (int i = 0; i < kNumShapes; ++i) add(Name(static_cast<Shape>(i)));
  for (int i = 0; i < kNumColors; ++i) add(Name(static_cast<Color>(i)));
  for (int i = 0; i < kNumBackgrounds; ++i) add(Name(static_cast<Background>(i)));
  return std::vector<std::string>(words.begin(), words.end());
}

}  // namespace linvideo::core::data

#pragma once
// The fixed evaluation prompt set and seeds (the yardstick for every model and conversion):
// 12 "seen" scenes (combinations that occur in training; every colour twice, every shape and
// motion at least twice, two with a second object) and 8 "held-out" scenes (one per held-out
// colour x shape x motion triple, see core/data/sampler.h). Paths are centred (CenterPath) with
// travel 0.4; prompts are paraphrase 0. Pure data; thread-safe.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/scene.h"

namespace linvideo::core::eval {

enum class PromptSet { kSeen, kHeldOut, kAll };
absl::StatusOr<PromptSet> ParsePromptSet(const std::string& word);  // seen | heldout | all

struct EvalCase {
  std::string name;  // "seen-01-red-circle-right"
  data::SceneSpec spec;
  std::string prompt;
  bool held_out = false;
};

std::vector<EvalCase> EvalCases(PromptSet set);

// Generation seeds, in order; an evaluation with K seeds uses the first K.
const std::vector<uint64_t>& EvalSeeds();

}  // namespace linvideo::core::eval

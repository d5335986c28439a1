#pragma once
// Seeded sampling of shapes-world scenes, with a held-out set of colour x shape x motion triples
// that never appears in the training split (compositional generalisation test).
//
// Held-out triples (every colour, shape and moving direction still appears in training, only
// these combinations do not; no object of a training scene, first or second, has one):
//   red triangle up,    green circle left,   blue square down,    yellow diamond right,
//   purple square left, orange circle up,    red diamond down,    blue triangle right
//
// Deterministic across platforms: a SplitMix64 generator and integer/double arithmetic only (no
// std distributions). Pure functions; thread-safe.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/scene.h"

namespace linvideo::core::data {

enum class Split { kTrain, kHeldOut };
const char* Name(Split split);
absl::StatusOr<Split> ParseSplit(const std::string& word);  // "train" | "heldout"

struct Triple {
  Color color;
  Shape shape;
  Motion motion;
};
const std::vector<Triple>& HeldOutTriples();
bool IsHeldOut(Color color, Shape shape, Motion motion);
bool IsHeldOut(const ObjectSpec& object);
// True if any object of the scene has a held-out triple.
bool HasHeldOutObject(const SceneSpec& spec);

// SplitMix64: small, fast, fully specified (same numbers on every platform).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  double Uniform();                      // [0, 1)
  double Uniform(double lo, double hi);  // [lo, hi)
  int Below(int n);                      // [0, n), n >= 1

 private:
  uint64_t state_;
};

struct SamplerOptions {
  double second_object_probability = 0.25;
  double min_travel = 0.3;  // fraction of the frame a moving object covers
  double max_travel = 0.5;
  double margin = 0.02;  // minimum gap between an object and the frame edge
  // Where the subject (objects[0]) is placed. < 0: anywhere its path fits (uniform). >= 0: its
  // path is centred in the frame, as in the evaluation prompts (CenterPath), then shifted by up
  // to +-layout_jitter (fraction of the frame) on each axis, staying inside the frame. A second
  // object is always placed anywhere clear of the subject's path.
  double layout_jitter = -1.0;
};

// A random scene: the training split never contains a held-out triple; the held-out split's first
// object always has one (its second object, if any, is still and so never does).
SceneSpec SampleScene(uint64_t seed, Split split, const SamplerOptions& options = {});

// A scene plus one of its prompt paraphrases (chosen by the same seed).
struct Example {
  SceneSpec spec;
  int paraphrase = 0;
  std::string prompt;
};
Example SampleExample(uint64_t seed, Split split, const SamplerOptions& options = {});

}  // namespace linvideo::core::data

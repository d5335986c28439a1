#pragma once
// Validation of the detectors on ground-truth shapes-world clips: render sampled scenes, detect,
// and compare with the scene's attributes. Thread-safe (no shared state).

#include <cstdint>
#include <string>
#include <vector>

#include "core/eval/detect.h"
#include "core/eval/score.h"

namespace linvideo::core::eval {

struct DetectorValidation {
  int clips = 0;
  Adherence accuracy;                 // per attribute, the mean over clips (1.0 = always right)
  std::vector<std::string> failures;  // up to 20: "<prompt>: <wrong attributes>"
};

// `count` clips from SampleScene(seed + i, every 4th from the held-out split), rendered at
// frames x height x width.
DetectorValidation ValidateDetectors(int count, uint64_t seed = 0, int frames = 33,
                                     int height = 128, int width = 128,
                                     const DetectorOptions& options = {});

}  // namespace linvideo::core::eval

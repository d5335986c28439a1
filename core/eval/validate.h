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

// Degradations applied to the ground truth before detection, to check robustness to what a
// generative model produces (soft edges, noise). Deterministic given the seed.
struct Perturbation {
  int blur_radius = 0;   // box blur of (2r+1)^2 pixels per frame
  double noise_std = 0;  // additive Gaussian noise (RGB units), then clamped
};

// `count` clips from SampleScene(seed + i, every 4th from the held-out split), rendered at
// frames x height x width.
DetectorValidation ValidateDetectors(int count, uint64_t seed = 0, int frames = 33,
                                     int height = 128, int width = 128,
                                     const DetectorOptions& options = {},
                                     const Perturbation& perturbation = {});

}  // namespace linvideo::core::eval

#pragma once
// Scores of one generated video against the scene its prompt describes, and their aggregation:
//  * adherence per attribute (background, colour, shape, motion, size, object count) and overall,
//  * temporal consistency (object found in every frame, stable shape, smooth centroid track),
//  * frame quality (edge sharpness relative to a ground-truth render of the same scene, and
//    background noise),
//  * fidelity to a reference video of the same prompt and seed (PSNR / SSIM per frame).
//
// Pure functions; thread-safe.

#include <torch/types.h>

#include <vector>

#include "absl/status/statusor.h"
#include "core/data/scene.h"
#include "core/eval/detect.h"

namespace linvideo::core::eval {

// Each field in [0, 1]. Per-object attributes are the fraction of the spec's objects for which
// an object of the spec's colour was detected (colour) and its shape / motion / size match.
struct Adherence {
  double background = 0, color = 0, shape = 0, motion = 0, size = 0;
  double count = 0;  // 1 if exactly the spec's number of objects was detected
  double all = 0;    // 1 if every one of the above is 1
  // Mean of the five prompt attributes (count is reported, not averaged in: a wrong object
  // still has the right count).
  double Mean() const { return (background + color + shape + motion + size) / 5; }
};
Adherence ScoreAdherence(const Detection& detection, const data::SceneSpec& spec);

// Means over the spec's objects (an object not detected scores 0 everywhere).
struct Consistency {
  double presence = 0;         // fraction of frames in which the object is found
  double shape_stability = 0;  // fraction of those frames agreeing with its majority shape
  double smoothness = 0;  // fraction of interior frames with |centroid acceleration| <= 1% frame
  double rms_jerk = 0;    // RMS third difference of the centroid (fraction of min(H, W))
  double score = 0;       // mean of presence, shape_stability and smoothness
};
Consistency ScoreConsistency(const Detection& detection, const data::SceneSpec& spec);

struct FrameQuality {
  double sharpness = 0;            // EdgeSharpness of the first object (0 if not detected)
  double reference_sharpness = 0;  // the same measured on a ground-truth render of the spec
  double background_noise = 0;     // RMS deviation of the border pixels (0 on ground truth)
  double score = 0;  // min(1, sharpness / reference) * max(0, 1 - noise / kNoiseScale)
};
inline constexpr double kNoiseScale = 25.0;

struct Fidelity {
  double psnr = 0, ssim = 0;  // means over frames
  std::vector<double> frame_psnr, frame_ssim;
};
// INVALID_ARGUMENT unless both are CPU uint8 [F, H, W, 3] of the same shape.
absl::StatusOr<Fidelity> CompareVideos(const torch::Tensor& video, const torch::Tensor& reference);

struct VideoScore {
  Detection detection;
  Adherence adherence;
  Consistency consistency;
  FrameQuality quality;
  bool has_fidelity = false;
  Fidelity fidelity;
};

// Scores `video` (CPU uint8 [F, H, W, 3]) against `spec` (a valid scene); `reference`, if given
// and defined, is the reference model's video for the same prompt and seed.
absl::StatusOr<VideoScore> ScoreVideo(const torch::Tensor& video, const data::SceneSpec& spec,
                                      const torch::Tensor* reference = nullptr,
                                      const DetectorOptions& options = {});

// Means of every score over a set of videos (fidelity over those that have one).
struct ScoreSummary {
  int videos = 0;
  Adherence adherence;
  double adherence_mean = 0;
  Consistency consistency;
  FrameQuality quality;
  int fidelity_videos = 0;
  double psnr = 0, ssim = 0;
};
ScoreSummary Summarize(const std::vector<const VideoScore*>& scores);
ScoreSummary Summarize(const std::vector<VideoScore>& scores);

}  // namespace linvideo::core::eval

#pragma once
// Text-to-video pipeline: umT5 text encoder -> flow-matching sampler over the Wan DiT -> VAE
// decode.
//
// Two ways to drive it:
//  * Generate(): whole requests, batched over prompts with identical shape (offline CLI, tests).
//  * The step-level API the serving engine uses: EncodeText -> InitRequest -> Step (a batch of
//    requests, each at its own step index, sharing the latent shape) ... -> Decode.
//
// Threading: one thread (the engine thread) calls EncodeText/InitRequest/Step. Decode() may run on
// other threads concurrently with Step() (modules are read-only at inference; the VAE's causal
// cache is per call). The pipeline object is immutable after Create(); hot swap replaces the whole
// object.

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/common/runtime.h"
#include "core/sampling/flow_schedule.h"
#include "core/sampling/sampler.h"

namespace linvideo::core::pipeline {

using sampling::SamplerKind;

struct GenerationParams {
  std::string prompt;
  std::string negative_prompt;  // empty: the model's default negative prompt ("" for custom models)
  int64_t width = 0;            // 0: the model's default
  int64_t height = 0;
  int64_t frames = 0;  // 4k+1
  int64_t steps = 0;
  double guidance = -1.0;  // < 0: default; <= 1 disables classifier-free guidance
  double shift = -1.0;     // < 0: default
  SamplerKind sampler = SamplerKind::kUniPC;
  uint64_t seed = 0;
};

// Limits and defaults of a loaded model, for validation at the server edge.
struct ModelLimits {
  int64_t min_size = 16, max_width = 1280, max_height = 1280, size_multiple = 16;
  int64_t max_frames = 81;
  int64_t max_steps = 100;
  double max_guidance = 20.0;
  int64_t text_len = 512;
  // Defaults applied to zero/negative GenerationParams fields.
  int64_t default_width = 832, default_height = 480, default_frames = 81, default_steps = 50;
  double default_guidance = 5.0, default_shift = 5.0;
};

// Overrides `limits` with the optional "linvideo" section of `root`/model_index.json (serving
// defaults and limits of the small shipped models); leaves them as they are without one.
void ApplyModelIndexLimits(const std::string& root, ModelLimits& limits);

struct PipelineOptions {
  std::string model_dir;  // diffusers layout (model_index.json) or Wan layout
  DeviceOptions device;
  int threads = 0;  // 0: all available cores
};

// Per-request denoising state, owned by the caller (the engine) between steps.
struct RequestState {
  GenerationParams params;          // defaults resolved
  torch::Tensor latents;            // [16, F', H/8, W/8] current x_t
  torch::Tensor cond;               // [text_len, text_dim] zero-padded prompt embedding
  torch::Tensor uncond;             // same for the negative prompt (undefined without guidance)
  sampling::FlowSchedule schedule;  // sigmas (steps + 1) and the integer timesteps the model sees
  sampling::SamplerState sampler;   // solver history (UniPC) of this request
  int64_t step = 0;                 // next step to run; == total_steps() when done
  int64_t total_steps() const { return schedule.steps(); }
  bool done() const { return step >= total_steps(); }
};

class TextToVideoPipeline {
 public:
  static absl::StatusOr<std::unique_ptr<TextToVideoPipeline>> Create(
      const PipelineOptions& options);
  virtual ~TextToVideoPipeline() = default;

  virtual const ModelLimits& limits() const = 0;
  // Resolves defaults; INVALID_ARGUMENT says which field is wrong and what is allowed.
  virtual absl::StatusOr<GenerationParams> Resolve(const GenerationParams& params) const = 0;

  // Batched text encoding -> one [text_len, text_dim] zero-padded embedding per prompt.
  virtual absl::StatusOr<std::vector<torch::Tensor>> EncodeText(
      const std::vector<std::string>& prompts) = 0;
  // Seeded noise, schedule and solver state for one request (params already resolved).
  virtual absl::StatusOr<std::unique_ptr<RequestState>> InitRequest(const GenerationParams& params,
                                                                    torch::Tensor cond,
                                                                    torch::Tensor uncond) = 0;
  // Runs one denoising step for every request in `batch` (same latent shape; each at its own step;
  // cond and uncond run as one DiT batch). A request's result equals what it gets alone.
  virtual absl::Status Step(const std::vector<RequestState*>& batch) = 0;
  // VAE decode of finished latents -> uint8 frames [F, H, W, 3] (CPU).
  virtual absl::StatusOr<torch::Tensor> Decode(const RequestState& state) = 0;

  // Whole requests (same resolved shape), returns uint8 [F, H, W, 3] per request.
  virtual absl::StatusOr<std::vector<torch::Tensor>> Generate(
      const std::vector<GenerationParams>& params) = 0;
};

}  // namespace linvideo::core::pipeline

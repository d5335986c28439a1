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
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/common/runtime.h"
#include "core/models/wan/dit.h"
#include "core/params/generation_params.h"
#include "core/sampling/flow_schedule.h"
#include "core/sampling/sampler.h"

namespace linvideo::core::wan {
// Declared here so this header stays narrow (FromComponents takes them; the .cc includes them).
class T5Encoder;
class T5Tokenizer;
class WanVae;
}  // namespace linvideo::core::wan

namespace linvideo::core::pipeline {

// Parameters, limits and their one Resolve live in core/params (LibTorch-free, shared with the
// server's edge); these names are kept for the pipeline's callers.
using params::GenerationParams;
using params::ModelLimits;
using params::SamplerKind;

// Overrides `limits` with the optional "linvideo" section of `root`/model_index.json (serving
// defaults and limits of the small shipped models, the declared sampler and a distilled model's
// timestep list); leaves them as they are without one. INVALID_ARGUMENT for a malformed section.
absl::Status ApplyModelIndexLimits(const std::string& root, ModelLimits& limits);

struct PipelineOptions {
  std::string model_dir;  // diffusers layout (model_index.json) or Wan layout
  DeviceOptions device;
  // The VAE's weights and decode precision; std::nullopt: fp32 (whatever device.dtype is). bf16
  // decodes faster on a CPU with AVX512-BF16 (the decoder is compute-bound, docs/benchmarks.md).
  std::optional<c10::ScalarType> vae_dtype;
  int threads = 0;  // 0: all available cores
};

// Per-request denoising state, owned by the caller (the engine) between steps.
struct RequestState {
  GenerationParams params;  // defaults resolved
  torch::Tensor latents;    // [16, F', H/8, W/8] current x_t
  // The DiT's text state (embedded text and every layer's cross-attention K/V), batch 1, prepared
  // once by InitRequest and reused at every step (freed after the last): the prompt, and the
  // negative prompt with CFG (empty, batch() == 0, without).
  wan::WanTextState cond;
  wan::WanTextState uncond;
  sampling::FlowSchedule schedule;  // sigmas (steps + 1) and the integer timesteps the model sees
  sampling::SamplerState sampler;   // solver history (UniPC) of this request
  int64_t step = 0;                 // next step to run; == total_steps() when done
  // Set by the caller to see the model's branch outputs: after each Step, the velocity of the
  // prompt row and (with CFG) of the negative row at the step just run, fp32, before guidance
  // combines them (the LinVideo trajectory cache records them). Off in serving.
  bool keep_branch_velocities = false;
  torch::Tensor cond_velocity, uncond_velocity;
  int64_t total_steps() const { return schedule.steps(); }
  bool done() const { return step >= total_steps(); }
};

class TextToVideoPipeline {
 public:
  static absl::StatusOr<std::unique_ptr<TextToVideoPipeline>> Create(
      const PipelineOptions& options);
  // The pipeline over modules built elsewhere (benches at dims no folder holds): the components
  // must agree (text width, latent channels); `limits` gets their latent geometry and text_len.
  static absl::StatusOr<std::unique_ptr<TextToVideoPipeline>> FromComponents(
      wan::WanModel dit, wan::T5Encoder text_encoder, std::unique_ptr<wan::T5Tokenizer> tokenizer,
      wan::WanVae vae, ModelLimits limits);
  virtual ~TextToVideoPipeline() = default;

  virtual const ModelLimits& limits() const = 0;
  // Resolves defaults; INVALID_ARGUMENT says which field is wrong and what is allowed.
  virtual absl::StatusOr<GenerationParams> Resolve(const GenerationParams& params) const = 0;

  // Batched text encoding -> one [text_len, text_dim] zero-padded embedding per prompt.
  virtual absl::StatusOr<std::vector<torch::Tensor>> EncodeText(
      const std::vector<std::string>& prompts) = 0;
  // Seeded noise, schedule, solver state and the prepared DiT text state for one request (params
  // already resolved; `cond`/`uncond` are EncodeText outputs, `uncond` undefined without CFG).
  virtual absl::StatusOr<std::unique_ptr<RequestState>> InitRequest(const GenerationParams& params,
                                                                    torch::Tensor cond,
                                                                    torch::Tensor uncond) = 0;
  // Runs one denoising step for every request in `batch` (same latent shape; each at its own step;
  // cond and uncond run as one DiT batch over the requests' prepared text states). A request's
  // result equals what it gets alone. On an error no request's state has changed.
  virtual absl::Status Step(const std::vector<RequestState*>& batch) = 0;
  // VAE decode of finished latents -> uint8 frames [F, H, W, 3] (CPU).
  virtual absl::StatusOr<torch::Tensor> Decode(const RequestState& state) = 0;

  // Whole requests (same resolved shape), returns uint8 [F, H, W, 3] per request.
  virtual absl::StatusOr<std::vector<torch::Tensor>> Generate(
      const std::vector<GenerationParams>& params) = 0;
};

}  // namespace linvideo::core::pipeline

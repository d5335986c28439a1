#pragma once
// Generation parameters: the one owner of what a request may ask for, the limits and serving
// defaults of a model, the latent geometry a request implies, and the one Resolve every path
// calls (server edge, both executors, the offline pipeline and tools), so every caller sees the
// same defaults and the same error messages. LibTorch-free: the server links it without the model
// code. Pure functions; thread-safe.

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/params/sampler_kind.h"

namespace linvideo::core::params {

// "Use the model's default" for guidance and shift (NaN, so that every real value, negative ones
// included, is validated as given).
inline constexpr double kUseDefault = std::numeric_limits<double>::quiet_NaN();

// What a client asks for. Zero sizes/steps and kUseDefault guidance/shift take the model's
// defaults; Resolve fills them in and validates the rest.
struct GenerationParams {
  std::string prompt;
  std::string negative_prompt;  // empty: the model's default negative prompt ("" for custom models)
  int64_t width = 0;            // 0: the model's default
  int64_t height = 0;
  int64_t frames = 0;  // 4k+1 (k+1 latent frames)
  int64_t steps = 0;
  double guidance = kUseDefault;  // <= 1 disables classifier-free guidance (see UsesCfg)
  double shift = kUseDefault;
  std::optional<SamplerKind> sampler;  // unset: the model's declared sampler (Resolve sets it)
  uint64_t seed = 0;
};

// The latent space of a model: the VAE's strides and channels and the DiT's patch size, taken
// from the model's own configs (these defaults are Wan 2.1's).
struct LatentGeometry {
  int64_t channels = 16;     // VAE z_dim (= DiT in_dim)
  int64_t time_stride = 4;   // VAE temporal stride: 4k+1 frames -> k+1 latent frames
  int64_t space_stride = 8;  // VAE spatial stride
  int64_t patch_t = 1, patch_h = 2, patch_w = 2;  // DiT patch size (t, h, w)
};

// Latent tensor of one request, [channels, frames, height, width], and the DiT tokens of one pass.
struct LatentShape {
  int64_t channels = 0, frames = 0, height = 0, width = 0;
  int64_t tokens = 0;  // (frames / patch_t) * (height / patch_h) * (width / patch_w)
};

// Limits and serving defaults of a loaded model. The shipped small models override the defaults in
// model_index.json's "linvideo" section; the server may lower max_prompt_bytes.
struct ModelLimits {
  int64_t min_size = 16, max_width = 1280, max_height = 1280;
  int64_t max_frames = 81;
  int64_t max_steps = 100;
  double max_guidance = 20.0;
  double max_shift = 100.0;
  int64_t max_prompt_bytes = 8192;  // each of prompt and negative prompt
  int64_t text_len = 512;           // text tokens the DiT attends (longer prompts are truncated)
  // Defaults applied to unset GenerationParams fields.
  int64_t default_width = 832, default_height = 480, default_frames = 81, default_steps = 50;
  double default_guidance = 5.0, default_shift = 5.0;
  SamplerKind default_sampler = SamplerKind::kUniPC;
  // A distilled few-step model's timestep list (model_index.json "linvideo" section, e.g. 1000,
  // 750, 500, 250 before the shift): non-empty, the model accepts only the fewstep sampler with
  // exactly these steps and no classifier-free guidance. Empty: any sampler and step count.
  std::vector<int64_t> fixed_timesteps;
  LatentGeometry geometry;

  // Width and height must be multiples of these (VAE stride x DiT patch).
  int64_t width_multiple() const { return geometry.space_stride * geometry.patch_w; }
  int64_t height_multiple() const { return geometry.space_stride * geometry.patch_h; }
};

// Classifier-free guidance runs (a second, unconditional pass per step) when guidance > 1.
bool UsesCfg(const GenerationParams& params);
// DiT passes per step: 2 with CFG, else 1.
int CfgPasses(const GenerationParams& params);
// The latent of a resolved request.
LatentShape LatentShapeOf(const GenerationParams& params, const LatentGeometry& geometry);
// Tokens one step of a resolved request costs against a step budget: latent tokens x CFG passes.
int64_t StepTokens(const GenerationParams& params, const LatentGeometry& geometry);

// Declares the sampler a model folder was made for (model_index.json's "linvideo" section):
// `sampler` by name; a non-empty `timesteps` list (strictly decreasing, in [1, 1000]) makes it a
// distilled few-step model: fewstep only, default steps = the list's length, guidance off.
// INVALID_ARGUMENT says what is wrong with the declaration.
absl::Status DeclareSampler(const std::string& sampler, const std::vector<int64_t>& timesteps,
                            ModelLimits& limits);

// The timesteps (before the shift, on the 1000-step training grid) a resolved fewstep request
// samples: the model's fixed list, else `steps` evenly spaced from 1000 (4 -> 1000, 750, 500, 250).
std::vector<int64_t> FewStepTimesteps(const GenerationParams& params, const ModelLimits& limits);

// Fills in the model's defaults and validates every field against `limits`. INVALID_ARGUMENT names
// the field, the value, and what is allowed.
absl::StatusOr<GenerationParams> Resolve(const GenerationParams& params, const ModelLimits& limits);

}  // namespace linvideo::core::params

#include "core/params/generation_params.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace linvideo::core::params {

bool UsesCfg(const GenerationParams& params) { return params.guidance > 1.0; }

int CfgPasses(const GenerationParams& params) { return UsesCfg(params) ? 2 : 1; }

LatentShape LatentShapeOf(const GenerationParams& p, const LatentGeometry& g) {
  LatentShape s;
  s.channels = g.channels;
  s.frames = (p.frames - 1) / g.time_stride + 1;
  s.height = p.height / g.space_stride;
  s.width = p.width / g.space_stride;
  s.tokens = (s.frames / g.patch_t) * (s.height / g.patch_h) * (s.width / g.patch_w);
  return s;
}

int64_t StepTokens(const GenerationParams& params, const LatentGeometry& geometry) {
  return LatentShapeOf(params, geometry).tokens * CfgPasses(params);
}

absl::Status DeclareSampler(const std::string& sampler, const std::vector<int64_t>& timesteps,
                            ModelLimits& limits) {
  SamplerKind kind = limits.default_sampler;
  if (!sampler.empty()) {
    absl::StatusOr<SamplerKind> parsed = ParseSamplerKind(sampler);
    if (!parsed.ok()) return parsed.status();
    kind = *parsed;
  }
  if (timesteps.empty()) {
    limits.default_sampler = kind;
    limits.fixed_timesteps.clear();
    return absl::OkStatus();
  }
  if (kind != SamplerKind::kFewStep) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a timestep list is declared for the fewstep sampler only, not for ", sampler));
  }
  if (static_cast<int64_t>(timesteps.size()) > limits.max_steps) {
    return absl::InvalidArgumentError(absl::StrCat("timestep list has ", timesteps.size(),
                                                   " entries; at most ", limits.max_steps));
  }
  for (size_t i = 0; i < timesteps.size(); ++i) {
    if (timesteps[i] < 1 || timesteps[i] > 1000 || (i > 0 && timesteps[i] >= timesteps[i - 1])) {
      return absl::InvalidArgumentError(
          absl::StrCat("timestep list [", absl::StrJoin(timesteps, ", "),
                       "] is not allowed; use strictly decreasing integers in [1, 1000] "
                       "(e.g. 1000, 750, 500, 250)"));
    }
  }
  limits.default_sampler = SamplerKind::kFewStep;
  limits.fixed_timesteps = timesteps;
  limits.default_steps = static_cast<int64_t>(timesteps.size());
  limits.default_guidance = 1.0;
  return absl::OkStatus();
}

std::vector<int64_t> FewStepTimesteps(const GenerationParams& params, const ModelLimits& limits) {
  if (!limits.fixed_timesteps.empty()) return limits.fixed_timesteps;
  std::vector<int64_t> out;
  for (int64_t k = 0; k < params.steps; ++k) {
    // 1000 * (1 - k / steps), rounded to the nearest integer timestep.
    out.push_back((1000 * (params.steps - k) + params.steps / 2) / params.steps);
  }
  return out;
}

absl::StatusOr<GenerationParams> Resolve(const GenerationParams& in, const ModelLimits& l) {
  GenerationParams p = in;
  auto bad = [](auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  if (p.prompt.empty()) return bad("prompt is empty; give a non-empty text prompt");
  for (auto [name, text] :
       {std::pair{"prompt", &p.prompt}, std::pair{"negative_prompt", &p.negative_prompt}}) {
    if (static_cast<int64_t>(text->size()) > l.max_prompt_bytes) {
      return bad(name, " is ", text->size(), " bytes; at most ", l.max_prompt_bytes,
                 " are allowed");
    }
  }
  // Integer fields: 0 takes the default; the range check below refuses negative values.
  if (p.width == 0) p.width = l.default_width;
  if (p.height == 0) p.height = l.default_height;
  if (p.frames == 0) p.frames = l.default_frames;
  if (p.steps == 0) p.steps = l.default_steps;
  if (std::isnan(p.guidance)) p.guidance = l.default_guidance;
  if (std::isnan(p.shift)) p.shift = l.default_shift;
  if (!p.sampler) p.sampler = l.default_sampler;
  for (auto [name, value, max, multiple, fallback] :
       {std::tuple{"width", p.width, l.max_width, l.width_multiple(), l.default_width},
        std::tuple{"height", p.height, l.max_height, l.height_multiple(), l.default_height}}) {
    if (value % multiple != 0 || value < l.min_size || value > max) {
      return bad(name, " ", value, " is not allowed; use a multiple of ", multiple, " in [",
                 l.min_size, ", ", max, "] (0: the model's default, ", fallback, ")");
    }
  }
  const LatentGeometry& g = l.geometry;
  if (p.frames < 1 || (p.frames - 1) % g.time_stride != 0 || p.frames > l.max_frames ||
      ((p.frames - 1) / g.time_stride + 1) % g.patch_t != 0) {
    return bad("frames ", p.frames, " is not allowed; use ", g.time_stride, "k+1 (1, ",
               1 + g.time_stride, ", ", 1 + 2 * g.time_stride, ", ...) up to ", l.max_frames,
               " (0: the model's default, ", l.default_frames, ")");
  }
  if (p.steps < 1 || p.steps > l.max_steps) {
    return bad("steps ", p.steps, " is not allowed; use 1..", l.max_steps,
               " (0: the model's default, ", l.default_steps, ")");
  }
  if (!(p.guidance >= 0 && p.guidance <= l.max_guidance)) {
    return bad("guidance ", p.guidance, " is not allowed; use 0..", l.max_guidance,
               " (<= 1 disables classifier-free guidance; unset: the model's default, ",
               l.default_guidance, ")");
  }
  if (!(p.shift > 0 && p.shift <= l.max_shift)) {
    return bad("shift ", p.shift, " is not allowed; use a value in (0, ", l.max_shift,
               "] (unset: the model's default, ", l.default_shift, ")");
  }
  if (*p.sampler == SamplerKind::kFewStep && p.steps > 1000) {
    return bad("steps ", p.steps, " is not allowed with the fewstep sampler; use 1..1000");
  }
  if (!l.fixed_timesteps.empty()) {
    // A distilled few-step model: its generator learned exactly this list, unguided.
    const int64_t n = static_cast<int64_t>(l.fixed_timesteps.size());
    const std::string list = absl::StrJoin(l.fixed_timesteps, ", ");
    if (*p.sampler != SamplerKind::kFewStep) {
      return bad("sampler ", SamplerKindName(*p.sampler),
                 " is not allowed; this model is distilled for the fewstep sampler over "
                 "timesteps [",
                 list, "] (unset: fewstep)");
    }
    if (p.steps != n) {
      return bad("steps ", p.steps, " is not allowed; this model is distilled for exactly ", n,
                 " steps (timesteps [", list, "]); use ", n, " or 0 (the model's default)");
    }
    if (UsesCfg(p)) {
      return bad("guidance ", p.guidance,
                 " is not allowed; this distilled model samples without classifier-free "
                 "guidance; use 0 (the model's default) or a value <= 1");
    }
  }
  return p;
}

}  // namespace linvideo::core::params

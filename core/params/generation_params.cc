#include "core/params/generation_params.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "absl/strings/str_cat.h"

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
  return p;
}

}  // namespace linvideo::core::params

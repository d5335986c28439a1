#include "server/proto_convert.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace linvideo::server {

absl::StatusOr<SubmitOptions> SubmitOptionsFromProto(const v1::GenerateRequest& req,
                                                     bool streaming) {
  SubmitOptions o;
  o.request_id = req.request_id();
  o.model = req.model();
  o.streaming = streaming;
  // Proto -> core structs only: 0 means "the model's default" on the wire; Resolve validates.
  GenerationParams& p = o.params;
  p.prompt = req.prompt();
  p.negative_prompt = req.negative_prompt();
  p.width = req.width();
  p.height = req.height();
  p.frames = req.frames();
  p.steps = req.steps();
  // Inside the server NaN means "the model's default" (Resolve): a NaN, an infinity or a -0 on
  // the wire is a client error, never a default.
  for (auto [name, value] :
       {std::pair{"guidance", req.guidance()}, std::pair{"shift", req.shift()}}) {
    if (!std::isfinite(value) || (value == 0 && std::signbit(value))) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " ", value == 0 ? "-0" : absl::StrCat(value),
                       " is not allowed; use a finite number (0: the model's default)"));
    }
  }
  p.guidance = req.guidance() == 0 ? core::params::kUseDefault : req.guidance();
  p.shift = req.shift() == 0 ? core::params::kUseDefault : req.shift();
  switch (req.sampler()) {
    case v1::SAMPLER_UNSPECIFIED:  // the model's declared sampler (Resolve)
      break;
    case v1::SAMPLER_UNIPC:
      p.sampler = core::params::SamplerKind::kUniPC;
      break;
    case v1::SAMPLER_EULER:
      p.sampler = core::params::SamplerKind::kEuler;
      break;
    case v1::SAMPLER_FEW_STEP:
      p.sampler = core::params::SamplerKind::kFewStep;
      break;
    default:
      return absl::InvalidArgumentError(
          "sampler: allowed SAMPLER_UNSPECIFIED (the model's own), SAMPLER_UNIPC, SAMPLER_EULER, "
          "SAMPLER_FEW_STEP");
  }
  p.seed = req.seed();
  o.output.fps = req.fps();
  switch (req.format()) {
    case v1::OUTPUT_FORMAT_UNSPECIFIED:
    case v1::OUTPUT_FORMAT_MP4:
      o.output.kind = OutputKind::kMp4;
      break;
    case v1::OUTPUT_FORMAT_WEBM:
      o.output.kind = OutputKind::kWebm;
      break;
    case v1::OUTPUT_FORMAT_PNG_FRAMES:
      o.output.kind = OutputKind::kPngFrames;
      break;
    default:
      return absl::InvalidArgumentError("format: allowed MP4, WEBM, PNG_FRAMES");
  }
  switch (req.priority()) {
    case v1::PRIORITY_LOW:
      o.priority = 0;
      break;
    case v1::PRIORITY_NORMAL:
      o.priority = 1;
      break;
    case v1::PRIORITY_HIGH:
      o.priority = 2;
      break;
    default:
      return absl::InvalidArgumentError("priority: allowed LOW, NORMAL, HIGH");
  }
  return o;
}

JobSpec FromProto(const v1::JobSpec& p) {
  JobSpec s;
  s.job_id = p.job_id();
  s.base = p.base();
  s.kind = p.kind_case() == v1::JobSpec::kDistill ? JobKind::kDistill : JobKind::kConvert;
  const v1::DistillJob& d = p.distill();
  s.distill.timesteps.assign(d.timesteps().begin(), d.timesteps().end());
  s.distill.steps = d.steps();
  s.distill.fake_updates = d.fake_updates();
  s.distill.real_guidance = d.real_guidance();
  s.distill.real = d.real();
  s.distill.lr = d.lr();
  s.distill.fake_lr = d.fake_lr();
  s.distill.seed = d.seed();
  s.distill.batch = d.batch();
  s.distill.trajectories = d.trajectories();
  s.distill.trajectory_steps = d.trajectory_steps();
  s.distill.checkpoint_every = d.checkpoint_every();
  const v1::ConvertJob& c = p.convert();
  s.convert.linear_layers = c.linear_layers();
  s.convert.select = c.select();
  s.convert.pinned = c.pinned();
  s.convert.objective = c.objective();
  s.convert.steps = c.steps();
  s.convert.lr = c.lr();
  s.convert.seed = c.seed();
  s.convert.batch = c.batch();
  s.convert.trajectories = c.trajectories();
  s.convert.trajectory_steps = c.trajectory_steps();
  s.convert.checkpoint_every = c.checkpoint_every();
  s.output_name = p.output_name();
  s.activate = p.activate();
  s.activate_as = p.activate_as();
  s.gate.prompts = p.gate().prompts();
  s.gate.seeds = p.gate().seeds();
  s.gate.steps = p.gate().steps();
  for (const auto& [k, v] : p.gate().max_drop()) s.gate.max_drop[k] = v;
  s.gate.min_psnr = p.gate().min_psnr();
  return s;
}

}  // namespace linvideo::server

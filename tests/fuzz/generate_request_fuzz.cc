// GenerateRequest validation from raw proto bytes, as the server receives them: parse ->
// SubmitOptionsFromProto (server/proto_convert.h) -> Resolve against the shipped default model's
// limits (its model_index.json serving section). Invariants: a resolved request is within every
// limit (sizes on the latent grid, frames 4k+1, finite guidance and shift), and its token and
// cost arithmetic does not overflow.
#include <cmath>

#include "core/io/json_file.h"
#include "core/params/generation_params.h"
#include "core/pipeline/model_index.h"
#include "linvideo/v1/generation.pb.h"
#include "server/proto_convert.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/quiet_protobuf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using linvideo::fuzz::Check;
  namespace params = linvideo::core::params;
  static const params::ModelLimits limits = [] {
    const std::string path = linvideo::fuzz::SourceFile("models/default/model_index.json");
    auto index = linvideo::core::io::ReadJsonFile(path);
    Check(index.ok(), "cannot read models/default/model_index.json");
    params::ModelLimits l;
    l.text_len = 64;
    Check(linvideo::core::pipeline::ApplyServingSection(*index, path, l).ok(),
          "the default model's serving section is refused");
    return l;
  }();
  linvideo::v1::GenerateRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return 0;
  auto options = linvideo::server::SubmitOptionsFromProto(req, /*streaming=*/false);
  if (!options.ok()) return 0;
  Check(options->priority >= 0 && options->priority <= 2, "priority outside 0..2");
  auto p = params::Resolve(options->params, limits);
  if (!p.ok()) return 0;
  Check(p->width >= limits.min_size && p->width <= limits.max_width &&
            p->width % limits.width_multiple() == 0,
        "resolved width outside its limits");
  Check(p->height >= limits.min_size && p->height <= limits.max_height &&
            p->height % limits.height_multiple() == 0,
        "resolved height outside its limits");
  Check(p->frames >= 1 && p->frames <= limits.max_frames && (p->frames - 1) % 4 == 0,
        "resolved frames not 4k+1 within the limit");
  Check(p->steps >= 1 && p->steps <= limits.max_steps, "resolved steps outside the limit");
  Check(std::isfinite(p->guidance) && std::isfinite(p->shift) && p->shift > 0,
        "resolved guidance or shift not finite");
  Check(params::StepTokens(*p, limits.geometry) > 0, "a resolved request costs no tokens");
  if (p->sampler == params::SamplerKind::kFewStep) {
    Check(!params::FewStepTimesteps(*p, limits).empty(), "a fewstep request has no timesteps");
  }
  return 0;
}

// Model folder configs from arbitrary bytes: the text is parsed as a JSON file would be
// (core/io/json_file.h ParseJson: duplicate keys refused), then read as each component's
// config.json (DiT, umT5, VAE) and as model_index.json's "linvideo" serving section. Invariants:
// nothing throws or overflows; a serving section that is accepted leaves limits Resolve can use
// (every default within its maximum, a declared timestep list strictly decreasing in [1, 1000]).
#include "core/io/json_file.h"
#include "core/models/wan/t5_config.h"
#include "core/models/wan/vae_config.h"
#include "core/models/wan/wan_config.h"
#include "core/params/generation_params.h"
#include "core/pipeline/model_index.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using linvideo::fuzz::Check;
  namespace lc = linvideo::core;
  auto json =
      lc::io::ParseJson(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz input");
  if (!json.ok()) return 0;
  (void)lc::wan::WanConfig::FromJson(*json);
  (void)lc::wan::T5Config::FromJson(*json);
  (void)lc::wan::VaeConfig::FromJson(*json);
  lc::params::ModelLimits limits;
  const lc::params::ModelLimits before = limits;
  absl::Status s = lc::pipeline::ApplyServingSection(*json, "model_index.json", limits);
  if (!s.ok()) {
    Check(limits.default_width == before.default_width &&
              limits.fixed_timesteps == before.fixed_timesteps,
          "a refused serving section changed the limits");
    return 0;
  }
  Check(limits.default_width <= limits.max_width && limits.default_height <= limits.max_height &&
            limits.default_frames <= limits.max_frames && limits.default_steps <= limits.max_steps,
        "an accepted serving section has a default above its maximum");
  for (size_t i = 0; i < limits.fixed_timesteps.size(); ++i) {
    const int64_t t = limits.fixed_timesteps[i];
    Check(t >= 1 && t <= 1000 && (i == 0 || t < limits.fixed_timesteps[i - 1]),
          "an accepted timestep list is not strictly decreasing in [1, 1000]");
  }
  // The model's defaults must resolve (an empty request is what a client sends first).
  lc::params::GenerationParams empty;
  empty.prompt = "a red circle";
  (void)lc::params::Resolve(empty, limits);
  return 0;
}

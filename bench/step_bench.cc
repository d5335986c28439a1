// linvideo-step-bench: where a served denoising step's time goes beyond the DiT forward. On a real
// model folder (default: models/default) at its serving defaults, it times, interleaved rep by rep
// in one run:
//   pipeline  TextToVideoPipeline::Step on one guided request (what the engine runs per step:
//             guidance batch, text-state assembly, DiT, CFG combine, sampler update)
//   prepared  the bare DiT Denoise on the same [2, ...] batch with the text state prepared once
//   forward   the bare DiT forward, text embedding and cross-attention K/V recomputed per call
//             (what every step cost before the text state was prepared per request)
// and prints medians and ratios.
//
// Usage: linvideo-step-bench [--model=models/default] [--compare=DIR2] [--reps=21] [--threads=N]

#include <ATen/ATen.h>
#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "core/common/runtime.h"
#include "core/pipeline/model_folder.h"
#include "core/pipeline/text_to_video.h"

namespace {

namespace lp = linvideo::core::pipeline;
namespace wan = linvideo::core::wan;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename Fn>
double TimeMs(Fn&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "linvideo-step-bench: %s\n", std::string(s.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "models/default", compare;
  int reps = 21, threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    bool ok = true;
    if (absl::StartsWith(a, "--model=")) {
      model = a.substr(8);
    } else if (absl::StartsWith(a, "--compare=")) {
      compare = a.substr(10);
    } else if (absl::StartsWith(a, "--reps=")) {
      ok = absl::SimpleAtoi(a.substr(7), &reps) && reps > 0;
    } else if (absl::StartsWith(a, "--threads=")) {
      ok = absl::SimpleAtoi(a.substr(10), &threads) && threads >= 0;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: linvideo-step-bench [--model=DIR] [--compare=DIR2] [--reps=N>0] "
                   "[--threads=N]\n");
      return 2;
    }
  }
  lp::PipelineOptions options;
  options.model_dir = model;
  options.threads = threads;
  auto pipeline = lp::TextToVideoPipeline::Create(options);
  if (!pipeline.ok()) return Fail(pipeline.status());
  auto folder = lp::ResolveModelFolder(model);
  if (!folder.ok()) return Fail(folder.status());
  auto dit = lp::LoadDit(*folder->transformer, options.device);
  if (!dit.ok()) return Fail(dit.status());

  lp::GenerationParams p;
  p.prompt = "a small red circle moves to the left on a white background";
  p.steps = reps + 1;  // one step per rep plus a warm-up
  auto resolved = (*pipeline)->Resolve(p);
  if (!resolved.ok()) return Fail(resolved.status());
  if (!linvideo::core::params::UsesCfg(*resolved)) {
    return Fail(absl::FailedPreconditionError("the model's default guidance does not use CFG"));
  }
  auto text = (*pipeline)->EncodeText({resolved->prompt, resolved->negative_prompt});
  if (!text.ok()) return Fail(text.status());
  auto state = (*pipeline)->InitRequest(*resolved, (*text)[0], (*text)[1]);
  if (!state.ok()) return Fail(state.status());
  // The second model runs the same request (its own text encoder, same seed and schedule).
  std::unique_ptr<lp::TextToVideoPipeline> other;
  std::unique_ptr<lp::RequestState> other_state;
  if (!compare.empty()) {
    lp::PipelineOptions other_options = options;
    other_options.model_dir = compare;
    auto created = lp::TextToVideoPipeline::Create(other_options);
    if (!created.ok()) return Fail(created.status());
    other = std::move(*created);
    auto other_text = other->EncodeText({resolved->prompt, resolved->negative_prompt});
    if (!other_text.ok()) return Fail(other_text.status());
    auto s2 = other->InitRequest(*resolved, (*other_text)[0], (*other_text)[1]);
    if (!s2.ok()) return Fail(s2.status());
    other_state = std::move(*s2);
  }

  c10::InferenceMode guard;
  const torch::Tensor x = (*state)->latents.unsqueeze(0).expand({2, -1, -1, -1, -1}).contiguous();
  const torch::Tensor t = torch::full({2}, 500.0);
  const torch::Tensor context = torch::stack({(*text)[0], (*text)[1]});  // [2, L, text_dim]
  const wan::WanTextState prepared = (*dit)->PrepareText(context);
  std::vector<double> step_ms, prepared_ms, forward_ms, other_ms;
  for (int rep = -1; rep < reps; ++rep) {  // rep -1: warm-up, not recorded
    const double s = TimeMs([&] {
      absl::Status st = (*pipeline)->Step({state->get()});
      if (!st.ok()) std::abort();
    });
    const double d = TimeMs([&] { (*dit)->Denoise(x, t, prepared); });
    const double f = TimeMs([&] { (*dit)->forward(x, t, context); });
    const double o = other ? TimeMs([&] {
      absl::Status st = other->Step({other_state.get()});
      if (!st.ok()) std::abort();
    })
                           : 0.0;
    if (rep < 0) continue;
    other_ms.push_back(o);
    step_ms.push_back(s);
    prepared_ms.push_back(d);
    forward_ms.push_back(f);
  }
  const double s = Median(step_ms), d = Median(prepared_ms), f = Median(forward_ms);
  std::printf(
      "model %s: %lldx%lldx%lld, guided (batch 2 x %lld tokens, %lld text tokens), %d reps\n",
      model.c_str(), static_cast<long long>(resolved->width),
      static_cast<long long>(resolved->height), static_cast<long long>(resolved->frames),
      static_cast<long long>(
          linvideo::core::params::LatentShapeOf(*resolved, (*pipeline)->limits().geometry).tokens),
      static_cast<long long>((*pipeline)->limits().text_len), reps);
  std::printf("| path | median ms | vs prepared DiT |\n|---|---|---|\n");
  std::printf("| pipeline Step (served step) | %.2f | %.3fx |\n", s, s / d);
  std::printf("| DiT Denoise, text prepared once | %.2f | 1.000x |\n", d);
  std::printf("| DiT forward, text recomputed per call | %.2f | %.3fx |\n", f, f / d);
  if (other) {
    const double o = Median(other_ms);
    std::printf(
        "\nserved step, same request: %s %.2f ms, %s %.2f ms: %.3fx the time (%.2fx faster)\n",
        model.c_str(), s, compare.c_str(), o, o / s, s / o);
  }
  return 0;
}

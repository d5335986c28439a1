// linvideo-dit-bench: seconds per Wan DiT forward (one denoising step) at the Wan 2.1 1.3B dims
// (dim 1536, ffn 8960, 12 heads x 128, text 512 x 4096) with random weights, fp32, and the
// achieved GFLOP/s as a fraction of a plain fp32 matmul measured in the same run (so a loaded
// machine still gives a meaningful ratio).
//
// Usage: linvideo-dit-bench [--layers=30] [--frames=5 --height=32 --width=32] [--reps=3]
//                           [--threads=N] [--prepared] [--batch=1] [--recipe] [--gelu=both]
//   --layers below the config's (1.3B: 30) runs fewer blocks and extrapolates the full time from
//     the per-block time.
//   --prepared times Denoise() with the text state prepared once (what a sampler loop pays).
//   --profile=PATH writes a chrome trace of the timed runs (per-op times).
//   --recipe uses the default model's DiT config instead of 1.3B (with --frames=9 --height=16
//     --width=16 --batch=2 --layers=6: one guided denoising step of the served default model).
//   --gelu=both alternates LibTorch's GELU and the vectorised kernel (WanModel::SetFusedGelu)
//     forward by forward and prints both medians and their ratio.

#include <ATen/ATen.h>
#include <sys/resource.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "core/common/runtime.h"
#include "core/models/wan/dit.h"
#include "core/train/recipe.h"

namespace {

namespace wan = linvideo::core::wan;

double Seconds(const std::chrono::steady_clock::time_point& start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// CPU seconds of this process (all threads): on a machine shared with other jobs, CPU time per
// forward / threads estimates the wall time on idle cores better than wall time does.
double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         1e-6 * (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// fp32 GEMM rate on a shape of the FFN.
double MatmulGflops() {
  auto a = at::randn({1280, 1536}), b = at::randn({1536, 8960});
  at::mm(a, b);
  std::vector<double> rates;
  for (int i = 0; i < 3; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto c = at::mm(a, b);
    rates.push_back(2.0 * 1280 * 1536 * 8960 / Seconds(start) / 1e9);
  }
  return Median(rates);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t layers = 30, frames = 5, height = 32, width = 32, reps = 3, threads = 0, batch = 1;
  bool prepared = false, recipe = false, gelu_both = false;
  std::string profile;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto flag = [&](const char* name, int64_t* value) {
      const std::string prefix = std::string("--") + name + "=";
      if (arg.rfind(prefix, 0) != 0) return false;
      return absl::SimpleAtoi(arg.substr(prefix.size()), value);
    };
    if (arg == "--prepared") {
      prepared = true;
    } else if (arg == "--recipe") {
      recipe = true;
    } else if (arg == "--gelu=both") {
      gelu_both = true;
    } else if (arg.rfind("--profile=", 0) == 0) {
      profile = arg.substr(10);
    } else if (!flag("layers", &layers) && !flag("frames", &frames) && !flag("height", &height) &&
               !flag("width", &width) && !flag("reps", &reps) && !flag("threads", &threads) &&
               !flag("batch", &batch)) {
      std::fprintf(stderr, "unknown or bad flag %s\n", arg.c_str());
      return 2;
    }
  }
  const int used_threads = linvideo::core::InitRuntime(static_cast<int>(threads));
  c10::InferenceMode guard;

  if (batch < 1 || layers < 1) {
    std::fprintf(stderr, "--batch and --layers must be >= 1\n");
    return 2;
  }
  wan::WanConfig config = recipe ? linvideo::core::train::DefaultDitRecipe().dit
                                 : *wan::NamedDitConfig("wan2.1-t2v-1.3b");
  const int64_t full_layers = config.num_layers;
  config.SetNumLayers(layers);
  auto model_or = wan::CreateWanModel(config);
  if (!model_or.ok()) {
    std::fprintf(stderr, "%s\n", model_or.status().ToString().c_str());
    return 1;
  }
  wan::WanModel model = *model_or;
  auto x = at::randn({batch, config.in_dim, frames, height, width});
  auto t = at::full({batch}, 999.0);
  auto context = at::randn({batch, config.text_len, config.text_dim});
  const double n = static_cast<double>(batch * frames * (height / 2) * (width / 2)),
               l = static_cast<double>(batch * config.text_len), c = config.dim, f = config.ffn_dim;
  const double block_flops = 8 * n * c * c + 4 * n * c * c + 4 * l * c * c +
                             4 * n * config.text_len * c + 4 * n * c * f + 4 * n * (n / batch) * c;
  const double text_flops = 2 * l * (config.text_dim * c + c * c);

  const double gemm = MatmulGflops();
  wan::WanTextState text = model->PrepareText(context);
  auto run = [&] { return prepared ? model->Denoise(x, t, text) : model->forward(x, t, context); };
  run();  // warm-up (RoPE table, allocator)
  if (gelu_both) {
    std::vector<double> aten_times, fused_times;
    for (int64_t i = 0; i < reps; ++i) {
      for (bool fused : {false, true}) {
        model->SetFusedGelu(fused);
        auto start = std::chrono::steady_clock::now();
        run();
        (fused ? fused_times : aten_times).push_back(Seconds(start));
      }
    }
    const double aten = Median(aten_times), fused = Median(fused_times);
    std::printf("threads %d, tokens %.0f, layers run %lld%s\n", used_threads, n,
                static_cast<long long>(layers), prepared ? ", text prepared" : "");
    std::printf(
        "forward, GELU LibTorch %.4f s | fused kernel %.4f s (medians of %lld) | "
        "speed-up %.2fx\n",
        aten, fused, static_cast<long long>(reps), aten / fused);
    return 0;
  }
  std::vector<double> times;
  const double cpu_start = CpuSeconds();
  std::unique_ptr<torch::autograd::profiler::RecordProfile> recorder;
  if (!profile.empty()) {
    recorder = std::make_unique<torch::autograd::profiler::RecordProfile>(profile);
  }
  for (int64_t i = 0; i < reps; ++i) {
    auto start = std::chrono::steady_clock::now();
    run();
    times.push_back(Seconds(start));
  }
  recorder.reset();
  const double cpu_per_forward = (CpuSeconds() - cpu_start) / reps;
  const double measured = Median(times);
  const double per_block = (measured - (prepared ? 0.0 : text_flops / (gemm * 1e9))) / layers;
  const double full = measured + (full_layers - layers) * per_block;
  const double full_flops = full_layers * block_flops + (prepared ? 0.0 : text_flops);
  std::printf("threads %d, tokens %.0f, layers run %lld%s\n", used_threads, n,
              static_cast<long long>(layers), prepared ? ", text prepared" : "");
  std::printf("plain fp32 matmul: %.1f GFLOP/s\n", gemm);
  std::printf("forward (%lld layers): %.3f s median of %lld\n", static_cast<long long>(layers),
              measured, static_cast<long long>(reps));
  std::printf("%lld-layer forward: %.2f s, %.1f GFLOP/s = %.0f%% of the matmul rate\n",
              static_cast<long long>(full_layers), full, full_flops / full / 1e9,
              100.0 * full_flops / full / 1e9 / gemm);
  std::printf("CPU time per forward (%lld layers): %.3f s; / %d threads = %.3f s\n",
              static_cast<long long>(layers), cpu_per_forward, used_threads,
              cpu_per_forward / used_threads);
  return 0;
}

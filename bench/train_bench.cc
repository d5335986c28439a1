// linvideo-train-bench: training step rate of the default-model recipe's DiT and VAE, fp32 vs
// CPU bf16 autocast (what `linvideo-train --precision` selects), and for the DiT in bf16 also
// LibTorch's GELU vs the vectorised kernel (`linvideo-train dit --gelu aten|fused`), each pair
// measured side by side in one run: the two variants alternate, and each reports the median of
// its timed steps.
//
// A DiT step is a forward of the recipe DiT on a batch of latents with a random text context,
// the flow-matching MSE, backward and an AdamW step; a VAE step encodes and decodes the recipe
// VAE's stage-1 windows, with an L1 + MSE loss, backward and AdamW. Random weights and data:
// the rate does not depend on them.
//
// Usage: linvideo-train-bench [--reps=5] [--threads=N] [--skip-vae]

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "core/common/runtime.h"
#include "core/models/wan/dit.h"
#include "core/models/wan/vae.h"
#include "core/train/recipe.h"
#include "kernels/torch_compat.h"

namespace {

namespace wan = linvideo::core::wan;
namespace train = linvideo::core::train;
using linvideo::kernels::ScopedCpuBf16Autocast;

double Seconds(const std::chrono::steady_clock::time_point& start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Runs step(variant) alternately for false and true (one warm-up each), returns median seconds.
std::pair<double, double> TimeBoth(int64_t reps, const std::function<void(bool)>& step) {
  step(false);
  step(true);
  std::vector<double> fp32, bf16;
  for (int64_t i = 0; i < reps; ++i) {
    for (bool low : {false, true}) {
      const auto start = std::chrono::steady_clock::now();
      step(low);
      (low ? bf16 : fp32).push_back(Seconds(start));
    }
  }
  return {Median(fp32), Median(bf16)};
}

void Report(const char* what, int64_t batch, std::pair<double, double> s) {
  std::printf(
      "%-4s fp32 %.3f s/step (%.2f samples/s) | bf16 %.3f s/step (%.2f samples/s) | "
      "bf16 speed-up %.2fx\n",
      what, s.first, batch / s.first, s.second, batch / s.second, s.first / s.second);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t reps = 5, threads = 0;
  bool skip_vae = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--reps=", 0) == 0 && absl::SimpleAtoi(arg.substr(7), &reps) && reps > 0) {
      continue;
    }
    if (arg.rfind("--threads=", 0) == 0 && absl::SimpleAtoi(arg.substr(10), &threads)) continue;
    if (arg == "--skip-vae") {
      skip_vae = true;
      continue;
    }
    std::fprintf(stderr,
                 "unknown or bad flag %s; usage: %s [--reps=N>0] [--threads=N] "
                 "[--skip-vae]\n",
                 arg.c_str(), argv[0]);
    return 2;
  }
  linvideo::core::InitRuntime(static_cast<int>(threads));
  std::printf("threads %d, %lld timed steps per precision\n", at::get_num_threads(),
              static_cast<long long>(reps));

  {  // DiT (recipe config, recipe batch, served latent shape)
    const train::DitTrainOptions o = train::DefaultDitRecipe();
    auto dit = wan::CreateWanModel(o.dit);
    if (!dit.ok()) {
      std::fprintf(stderr, "%s\n", std::string(dit.status().message()).c_str());
      return 1;
    }
    wan::WanModel model = *dit;
    model->SetFusedGelu(o.fused_gelu);
    model->train();
    torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-4));
    const int64_t b = o.batch;
    const at::Tensor x0 =
        at::randn({b, o.dit.in_dim, (o.frames - 1) / 4 + 1, o.height / 8, o.width / 8});
    const at::Tensor context = at::randn({b, o.dit.text_len, o.dit.text_dim});
    const at::Tensor t = at::full({b}, 500.0);
    auto step = [&](bool bf16) {
      const at::Tensor noise = at::randn(x0.sizes());
      const at::Tensor xt = 0.5 * x0 + 0.5 * noise;
      at::Tensor v;
      {
        ScopedCpuBf16Autocast autocast(bf16);
        v = model->forward(xt, t, context);
      }
      const at::Tensor loss = (v.to(at::kFloat) - (noise - x0)).pow(2).mean();
      optimizer.zero_grad();
      loss.backward();
      torch::nn::utils::clip_grad_norm_(model->parameters(), 1.0);
      optimizer.step();
    };
    std::printf("DiT: dim %lld, %lld layers, batch %lld x %lld tokens\n",
                static_cast<long long>(o.dit.dim), static_cast<long long>(o.dit.num_layers),
                static_cast<long long>(b),
                static_cast<long long>(x0.size(2) * x0.size(3) * x0.size(4) / 4));
    Report("DiT", b, TimeBoth(reps, step));
    const auto gelu = TimeBoth(reps, [&](bool fused) {
      model->SetFusedGelu(fused);
      step(true);
    });
    std::printf("DiT bf16 GELU: LibTorch %.3f s/step | fused kernel %.3f s/step | speed-up %.2fx\n",
                gelu.first, gelu.second, gelu.first / gelu.second);
  }
  if (!skip_vae) {  // VAE stage 1 (recipe config, batch, window and crop)
    const train::VaeTrainOptions o = train::DefaultVaeRecipe();
    auto created = wan::CreateWanVae(o.config);
    if (!created.ok()) {
      std::fprintf(stderr, "%s\n", std::string(created.status().message()).c_str());
      return 1;
    }
    wan::WanVae vae = *created;
    vae->train();
    torch::optim::AdamW optimizer(vae->parameters(), torch::optim::AdamWOptions(1e-4));
    const at::Tensor x = at::rand({o.batch, 3, o.window, o.crop, o.crop}) * 2 - 1;
    auto step = [&](bool bf16) {
      at::Tensor y;
      {
        ScopedCpuBf16Autocast autocast(bf16);
        y = vae->DecodeUnclamped(vae->Normalize(vae->EncodeDistribution(x).mu));
      }
      const at::Tensor diff = y.to(at::kFloat) - x;
      const at::Tensor loss = diff.abs().mean() + diff.pow(2).mean();
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
    };
    std::printf("VAE: base_dim %lld, batch %lld x %lld frames x %lldx%lld\n",
                static_cast<long long>(o.config.base_dim), static_cast<long long>(o.batch),
                static_cast<long long>(o.window), static_cast<long long>(o.crop),
                static_cast<long long>(o.crop));
    Report("VAE", o.batch, TimeBoth(reps, step));
  }
  return 0;
}

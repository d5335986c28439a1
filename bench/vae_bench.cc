// linvideo-vae-bench: where a served video's VAE decode time goes, and what bf16 costs in pixels.
// On a model folder's VAE (default: models/default) at the serving size (33×128×128), it encodes
// the fixed evaluation scenes' ground-truth clips once, then decodes their latents in fp32 and in
// bf16, interleaved rep by rep in one run, and prints:
//   - the median decode time of each precision and their ratio;
//   - the decoder's convolution FLOPs per video (from the config: every 3×3×3 and resample
//     convolution at the size each stage runs at) and the FLOP rate each precision reaches;
//   - PSNR of the bf16 decode against the fp32 decode, and of both against the rendered clip.
//
// Usage: linvideo-vae-bench [--model=models/default] [--reps=7] [--threads=N] [--clips=4]

#include <ATen/ATen.h>
#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "core/common/runtime.h"
#include "core/data/render.h"
#include "core/eval/eval_set.h"
#include "core/eval/metrics.h"
#include "core/models/wan/vae.h"
#include "core/pipeline/model_folder.h"

namespace {

namespace lp = linvideo::core::pipeline;
namespace wan = linvideo::core::wan;

constexpr int64_t kFrames = 33, kSize = 128;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "linvideo-vae-bench: %s\n", std::string(s.message()).c_str());
  return 1;
}

// [1, 3, F, H, W] in [-1, 1] (any dtype) -> [F, H, W, 3] uint8, as the server converts frames.
torch::Tensor ToUint8(const torch::Tensor& video) {
  return video[0]
      .to(torch::kFloat)
      .permute({1, 2, 3, 0})
      .add(1.0)
      .mul(127.5)
      .round()
      .clamp(0, 255)
      .to(torch::kUInt8)
      .contiguous();
}

double MeanPsnr(const torch::Tensor& a, const torch::Tensor& b) {
  const std::vector<double> p = linvideo::core::eval::FramePsnr(
      a.data_ptr<uint8_t>(), b.data_ptr<uint8_t>(), static_cast<int>(a.size(0)),
      static_cast<int>(a.size(1)), static_cast<int>(a.size(2)));
  double sum = 0;
  for (double v : p) sum += v;
  return sum / static_cast<double>(p.size());
}

// Multiply-adds ×2 of the decoder's convolutions for one video, from its config: the decoder runs
// at the latent size through stage 0, doubles H and W after every stage but the last, and doubles
// T (1 + 4(F−1) frames at the end) where the encoder downsampled in time.
double DecoderFlops(const wan::VaeConfig& c, int64_t latent_frames) {
  const int64_t stages = static_cast<int64_t>(c.dim_mult.size());
  std::vector<int64_t> dims = {c.base_dim * c.dim_mult.back()};
  for (auto it = c.dim_mult.rbegin(); it != c.dim_mult.rend(); ++it) {
    dims.push_back(c.base_dim * *it);
  }
  auto conv = [](double cin, double cout, double k, double t, double hw) {
    return 2.0 * cin * cout * k * t * hw;
  };
  double t = static_cast<double>(latent_frames);
  double hw = static_cast<double>(kSize / 8) * static_cast<double>(kSize / 8);
  double flops = conv(c.z_dim, dims[0], 27, t, hw);              // conv1
  flops += 4 * conv(dims[0], dims[0], 27, t, hw);                // middle: two residual blocks
  const double c0 = static_cast<double>(dims[0]);                // middle attention per frame: qkv,
  flops += t * (2.0 * c0 * 4.0 * c0 * hw + 4.0 * hw * hw * c0);  // proj, QKᵀ and AV
  for (int64_t i = 0; i < stages; ++i) {
    int64_t in = i > 0 ? dims[i] / 2 : dims[i];
    const int64_t out = dims[i + 1];
    for (int64_t j = 0; j < c.num_res_blocks + 1; ++j, in = out) {
      flops += conv(in, out, 27, t, hw) + conv(out, out, 27, t, hw);
      if (in != out) flops += conv(in, out, 1, t, hw);
    }
    if (i + 1 != stages) {
      const bool temporal = c.temperal_downsample[stages - 2 - i];
      if (temporal) {
        flops += conv(out, 2 * out, 3, t, hw);  // time_conv
        t = 1 + 2 * (t - 1);                    // the causal chunks: 1, then 2 per latent frame
      }
      hw *= 4;
      flops += conv(out, out / 2, 9, t, hw);  // the resample's 3×3 conv at the new size
    }
  }
  flops += conv(dims.back(), 3, 27, static_cast<double>(1 + 4 * (latent_frames - 1)), hw);
  return flops;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "models/default";
  int reps = 7, threads = 0, clips = 4;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    bool ok = true;
    if (absl::StartsWith(a, "--model=")) {
      model = a.substr(8);
    } else if (absl::StartsWith(a, "--reps=")) {
      ok = absl::SimpleAtoi(a.substr(7), &reps) && reps > 0;
    } else if (absl::StartsWith(a, "--threads=")) {
      ok = absl::SimpleAtoi(a.substr(10), &threads) && threads >= 0;
    } else if (absl::StartsWith(a, "--clips=")) {
      ok = absl::SimpleAtoi(a.substr(8), &clips) && clips > 0;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: linvideo-vae-bench [--model=DIR] [--reps=N>0] [--threads=N] "
                   "[--clips=N>0]\n");
      return 2;
    }
  }
  linvideo::core::InitRuntime();
  if (threads > 0) at::set_num_threads(threads);
  auto folder = lp::ResolveModelFolder(model);
  if (!folder.ok()) return Fail(folder.status());
  if (!folder->vae) return Fail(absl::NotFoundError(model + " has no VAE"));
  auto fp32 = lp::LoadVae(*folder->vae, {});
  if (!fp32.ok()) return Fail(fp32.status());
  auto bf16 = lp::LoadVae(*folder->vae, {});
  if (!bf16.ok()) return Fail(bf16.status());
  (*bf16)->to(torch::kBFloat16);

  c10::InferenceMode guard;
  const auto cases = linvideo::core::eval::EvalCases(linvideo::core::eval::PromptSet::kAll);
  std::vector<torch::Tensor> truth, latents;
  for (int i = 0; i < clips && i < static_cast<int>(cases.size()); ++i) {
    auto clip = linvideo::core::data::Render(cases[i].spec, kFrames, kSize, kSize);
    if (!clip.ok()) return Fail(clip.status());
    truth.push_back(*clip);
    const torch::Tensor video =  // [1, 3, F, H, W] in [-1, 1]
        clip->permute({3, 0, 1, 2}).unsqueeze(0).to(torch::kFloat).div(127.5).sub(1.0);
    latents.push_back((*fp32)->Encode(video));
  }
  std::vector<double> fp32_ms, bf16_ms;
  double psnr_bf16_fp32 = 0, psnr_fp32_truth = 0, psnr_bf16_truth = 0;
  for (int rep = -1; rep < reps; ++rep) {  // rep -1: warm-up, not timed
    const torch::Tensor& z = latents[static_cast<size_t>(std::max(rep, 0)) % latents.size()];
    auto t0 = std::chrono::steady_clock::now();
    const torch::Tensor a = (*fp32)->Decode(z);
    auto t1 = std::chrono::steady_clock::now();
    const torch::Tensor b = (*bf16)->Decode(z.to(torch::kBFloat16));
    auto t2 = std::chrono::steady_clock::now();
    if (rep < 0) continue;
    fp32_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    bf16_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
  }
  for (size_t i = 0; i < latents.size(); ++i) {
    const torch::Tensor a = ToUint8((*fp32)->Decode(latents[i]));
    const torch::Tensor b = ToUint8((*bf16)->Decode(latents[i].to(torch::kBFloat16)));
    psnr_bf16_fp32 += MeanPsnr(b, a) / static_cast<double>(latents.size());
    psnr_fp32_truth += MeanPsnr(a, truth[i]) / static_cast<double>(latents.size());
    psnr_bf16_truth += MeanPsnr(b, truth[i]) / static_cast<double>(latents.size());
  }
  const double f = Median(fp32_ms), h = Median(bf16_ms);
  const double flops = DecoderFlops((*fp32)->config(), latents[0].size(2));
  std::printf("VAE decode, %lldx%lldx%lld video (latent %lld frames), %d threads, %d reps:\n",
              static_cast<long long>(kFrames), static_cast<long long>(kSize),
              static_cast<long long>(kSize), static_cast<long long>(latents[0].size(2)),
              at::get_num_threads(), reps);
  std::printf("  decoder convolutions: %.1f GFLOP per video\n", flops / 1e9);
  std::printf("  fp32: %.1f ms (%.0f GFLOP/s)\n", f, flops / f / 1e6);
  std::printf("  bf16: %.1f ms (%.0f GFLOP/s)\n", h, flops / h / 1e6);
  std::printf("  fp32 / bf16 time: %.2fx\n", f / h);
  std::printf(
      "  PSNR over %zu eval clips: bf16 vs fp32 decode %.2f dB; vs the rendered clip: fp32 %.2f "
      "dB, bf16 %.2f dB\n",
      latents.size(), psnr_bf16_fp32, psnr_fp32_truth, psnr_bf16_truth);
  return 0;
}

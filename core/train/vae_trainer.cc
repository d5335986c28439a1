#include "core/train/vae_trainer.h"

#include <torch/optim/adamw.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/common/status.h"
#include "core/data/render.h"
#include "core/data/sampler.h"
#include "core/eval/eval_set.h"
#include "core/io/json_file.h"
#include "core/io/safetensors.h"
#include "core/io/state_dict.h"
#include "core/models/wan/vae.h"
#include "core/models/wan/vae_key_map.h"
#include "core/train/data_parallel.h"
#include "core/train/train_state.h"
#include "kernels/torch_compat.h"

namespace linvideo::core::train {
namespace fs = std::filesystem;

std::string VaeWeightsPath(const std::string& work_dir) {
  return (fs::path(work_dir) / "vae.safetensors").string();
}
std::string VaeConfigPath(const std::string& work_dir) {
  return (fs::path(work_dir) / "vae_config.json").string();
}

namespace {

absl::Status Validate(const VaeTrainOptions& o) {
  auto bad = [](auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  if (o.work_dir.empty()) return bad("VAE training needs a work directory");
  LV_RETURN_IF_ERROR(o.config.Validate());
  const int64_t ts = o.config.temporal_stride(), ss = o.config.spatial_stride();
  if (o.steps < 1 || o.batch < 1) return bad("steps and batch must be >= 1");
  if (o.window < 1 || (o.window - 1) % ts != 0 || o.window > o.clip_frames) {
    return bad("window ", o.window, " must be 1 + ", ts, "·k frames and <= clip_frames ",
               o.clip_frames);
  }
  if (o.crop < ss || o.crop % ss != 0 || o.crop > o.height || o.crop > o.width) {
    return bad("crop ", o.crop, " must be a multiple of ", ss, " and <= the rendered size ",
               o.height, "x", o.width);
  }
  if (!(o.lr > 0) || o.kl_weight < 0 || o.object_weight < 0 || o.edge_weight < 0 ||
      !(o.first_frame_weight > 0) || o.frame0_marker < 0 || o.frame0_marker_weight < 0 ||
      o.scale_equivariance < 0) {
    return bad(
        "lr and first_frame_weight must be > 0; kl_weight, object_weight, edge_weight >= 0; "
        "frame0_marker, frame0_marker_weight, scale_equivariance >= 0");
  }
  return absl::OkStatus();
}

struct VaeBatchData {
  torch::Tensor video;       // [B, 3, window, crop, crop] in [-1, 1]
  torch::Tensor background;  // [B, 3, 1, 1, 1] in [-1, 1]
};

// PSNR (dB) of `y` (clamped to [-1, 1]) against `x`, both in [-1, 1] (peak-to-peak range 2).
double Psnr(const torch::Tensor& y, const torch::Tensor& x) {
  const double m = (y.clamp(-1, 1) - x).pow(2).mean().item<double>();
  return 10.0 * std::log10(4.0 / std::max(m, 1e-12));
}

// Batch of step `step`: random training scenes, each a random window of its clip and a crop that
// contains the subject (centred on it at the window's middle frame, jittered by up to a quarter
// crop), so no step is spent on empty background.
// Only this process's rows `shard` of the combined batch are rendered (each row is seeded by its
// index, so the rows do not depend on the world size).
absl::StatusOr<VaeBatchData> VaeBatch(const VaeTrainOptions& o, int64_t step, const Shard& shard) {
  std::vector<torch::Tensor> clips, backgrounds;
  for (int64_t b = shard.begin; b < shard.begin + shard.count; ++b) {
    data::Rng rng(MixSeed(o.seed, static_cast<uint64_t>(step), 1000 + b));
    const data::SceneSpec spec = data::SampleScene(rng.Next(), data::Split::kTrain);
    LV_ASSIGN_OR_RETURN(torch::Tensor clip,
                        data::Render(spec, o.clip_frames, o.height, o.width));  // [F, H, W, 3]
    const int64_t f0 = rng.Below(static_cast<int>(o.clip_frames - o.window + 1));
    double cx = 0.5, cy = 0.5;
    const double t = o.clip_frames > 1
                         ? (f0 + (o.window - 1) / 2.0) / static_cast<double>(o.clip_frames - 1)
                         : 0.0;
    data::ObjectCenter(spec.objects.front(), t, &cx, &cy);
    const auto place = [&](double centre, int64_t size) {
      const double jitter = rng.Uniform(-0.25, 0.25) * o.crop;
      const int64_t start =
          static_cast<int64_t>(std::lround(centre * size + jitter - o.crop / 2.0));
      return std::clamp<int64_t>(start, 0, size - o.crop);
    };
    const int64_t y0 = place(cy, o.height);
    const int64_t x0 = place(cx, o.width);
    clips.push_back(
        clip.narrow(0, f0, o.window).narrow(1, y0, o.crop).narrow(2, x0, o.crop).contiguous());
    const data::Rgb bg = data::BackgroundRgb(spec.background);
    backgrounds.push_back(
        torch::tensor({bg.r / 127.5 - 1.0, bg.g / 127.5 - 1.0, bg.b / 127.5 - 1.0}, torch::kFloat));
  }
  return VaeBatchData{ToModelVideo(torch::stack(clips)),
                      torch::stack(backgrounds).view({shard.count, 3, 1, 1, 1})};
}

}  // namespace

absl::StatusOr<TrainSummary> TrainVae(const VaeTrainOptions& o) {
  LV_RETURN_IF_ERROR(Validate(o));
  std::error_code ec;
  fs::create_directories(o.work_dir, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot create ", o.work_dir, ": ", ec.message()));
  const std::string ckpt = (fs::path(o.work_dir) / "vae.ckpt").string();

  torch::manual_seed(MixSeed(o.seed, 0, 1));
  LV_ASSIGN_OR_RETURN(wan::WanVae vae, wan::CreateWanVae(o.config));
  vae->train();
  torch::optim::AdamW optimizer(
      vae->parameters(), torch::optim::AdamWOptions(o.lr).betas({0.9, 0.99}).weight_decay(0));
  TrainState state;
  state.modules = {{"vae", vae.ptr().get()}};
  state.optimizers = {{"adamw", &optimizer}};
  if (absl::Status s = LoadTrainState(ckpt, &state); !s.ok() && !absl::IsNotFound(s)) return s;
  const DataParallel& group = DataParallel::Get();
  LV_ASSIGN_OR_RETURN(const Shard shard, group.ShardOf(o.batch, "--batch"));
  if (state.next_step == 0 && !o.init_from.empty()) {
    LV_ASSIGN_OR_RETURN(io::TensorMap weights, io::ReadWeights(o.init_from, "vae"));
    LV_RETURN_IF_ERROR(wan::LoadWanVaeWeights(vae, weights));
  } else if (state.next_step == 0) {
    // Start nearly deterministic: log-variance bias -8 (posterior std 0.02) instead of ~0, so the
    // decoder does not first have to learn to see through unit-variance sampling noise. The KL
    // term then lets the variance grow where the latent has room.
    torch::NoGradGuard no_grad;
    const int64_t z = o.config.z_dim;
    for (auto& item : vae->named_parameters()) {
      if (item.key() == "conv1.bias") item.value().narrow(0, z, z).fill_(-8.0);
    }
  }

  LV_RETURN_IF_ERROR(CheckRanksAgree(state));
  ProgressLog log(
      o.log_file.empty() ? (fs::path(o.work_dir) / "train_vae.log").string() : o.log_file,
      state.next_step, o.steps);
  if (state.next_step > 0)
    log.Line(absl::StrCat("resuming VAE training at step ", state.next_step));
  TrainSummary summary;
  // marker_gap: the mean signed frame-0 gap, in stds; half_psnr: the 2x2-pooled latent's decode
  // against the 2x2-pooled clip (with scale_equivariance only).
  double psnr = 0, marker_gap = 0, half_psnr = 0;
  const int64_t end = o.stop_at > 0 ? std::min(o.stop_at, o.steps) : o.steps;
  for (int64_t step = state.next_step; step < end; ++step) {
    LV_ASSIGN_OR_RETURN(VaeBatchData batch, VaeBatch(o, step, shard));
    const torch::Tensor& x = batch.video;
    const double lr = LearningRate(o.lr, step, o.warmup, o.steps);
    SetLearningRate(optimizer, lr);
    double loss_value = 0;
    LV_RETURN_IF_ERROR(TorchCall("VAE training step", [&]() -> absl::Status {
      wan::VaeLatentDistribution q;
      {
        kernels::ScopedCpuBf16Autocast autocast(o.bf16);
        q = vae->EncodeDistribution(x);  // unnormalised
      }
      q.mu = q.mu.to(torch::kFloat);
      at::Generator gen = StepGenerator(o.seed, step, 2);
      // Drawn for the combined batch, this process's rows kept: the same noise per row as in
      // one process.
      const torch::Tensor eps = ShardRandn(q.mu, o.batch, shard, gen);
      const torch::Tensor logvar = q.logvar.to(torch::kFloat).clamp(-30.0, 20.0);
      const torch::Tensor z = q.mu + (0.5 * logvar).exp() * eps;
      torch::Tensor y;
      {
        kernels::ScopedCpuBf16Autocast autocast(o.bf16);
        // Decode() takes normalised latents; Normalize is affine, so z reaches the decoder as is.
        y = vae->DecodeUnclamped(vae->Normalize(z));
      }
      y = y.to(torch::kFloat);
      // Pixel loss of decoded `out` against `in`: L1 + MSE with object pixels weighted, frame 0
      // weighted, plus the optional edge term.
      const auto reconstruction = [&](const torch::Tensor& out, const torch::Tensor& in) {
        const torch::Tensor diff = out - in;
        // Objects cover a few percent of the pixels: weight pixels that differ from the
        // background so their colour and shape are not traded for a slightly better background.
        const torch::Tensor object =
            ((in - batch.background).abs().sum(1, true) > 0.05).to(in.dtype());
        torch::Tensor weight = 1.0 + o.object_weight * object;  // [B, 1, T, H, W]
        if (o.first_frame_weight != 1.0) {
          // The causal VAE codes the first frame alone (one latent frame for 1 frame, the others
          // for 4): weight it like a group of frames.
          torch::Tensor frame_weight = torch::ones({1, 1, in.size(2), 1, 1}, in.options());
          frame_weight.narrow(2, 0, 1).fill_(o.first_frame_weight);
          weight = weight * frame_weight;
        }
        torch::Tensor rec = (weight * diff.abs()).mean() + (weight * diff.pow(2)).mean();
        if (o.edge_weight > 0) {
          // L1 between the spatial finite differences of output and input: blur (rounded
          // corners, soft edges) costs more than under a pixel loss alone.
          for (int64_t dim : {3, 4}) {
            const int64_t n = in.size(dim) - 1;
            const torch::Tensor dy = out.narrow(dim, 1, n) - out.narrow(dim, 0, n);
            const torch::Tensor dx = in.narrow(dim, 1, n) - in.narrow(dim, 0, n);
            rec = rec + o.edge_weight * (dy - dx).abs().mean();
          }
        }
        return rec;
      };
      torch::Tensor rec = reconstruction(y, x);
      if (o.scale_equivariance > 0) {
        // Decode the 2x2-pooled latent; its target is the 2x2-pooled input (time untouched).
        const std::vector<int64_t> pool = {1, 2, 2};
        torch::Tensor y_half;
        {
          kernels::ScopedCpuBf16Autocast autocast(o.bf16);
          y_half = vae->DecodeUnclamped(vae->Normalize(torch::avg_pool3d(z, pool)));
        }
        y_half = y_half.to(torch::kFloat);
        const torch::Tensor x_half = torch::avg_pool3d(x, pool);
        rec = rec + o.scale_equivariance * reconstruction(y_half, x_half);
        half_psnr = Psnr(y_half.detach(), x_half);
      }
      const torch::Tensor kl = 0.5 * (q.mu.pow(2) + logvar.exp() - 1.0 - logvar).mean();
      torch::Tensor loss = rec + o.kl_weight * kl;
      if (o.frame0_marker > 0 && q.mu.size(2) > 1) {
        // Per sample and channel: frame 0's spatial mean minus the later frames' mean, in units
        // of the batch's channel std over the later frames (detached), towards +-marker.
        const torch::Tensor later = q.mu.narrow(2, 1, q.mu.size(2) - 1);
        const torch::Tensor std = later.detach()
                                      .transpose(0, 1)
                                      .reshape({q.mu.size(1), -1})
                                      .std(1)
                                      .clamp_min(1e-3)
                                      .view({1, -1});                                      // [1, C]
        const torch::Tensor gap = q.mu.select(2, 0).mean({2, 3}) - later.mean({2, 3, 4});  // [B, C]
        torch::Tensor sign = torch::ones({1, q.mu.size(1)}, q.mu.options());
        sign.slice(1, 1, sign.size(1), 2).fill_(-1.0);
        marker_gap = (gap / std * sign).mean().item<double>();
        loss = loss + o.frame0_marker_weight * (gap / std - o.frame0_marker * sign).pow(2).mean();
      }
      optimizer.zero_grad();
      loss.backward();
      // Every term is a mean over this process's rows, so the mean of the ranks' gradients is
      // the combined batch's (the frame-0 marker's std is a per-process batch statistic).
      LV_RETURN_IF_ERROR(group.AverageGradients(vae->parameters()));
      torch::nn::utils::clip_grad_norm_(vae->parameters(), 1.0);
      optimizer.step();
      LV_ASSIGN_OR_RETURN(loss_value, group.GlobalMean(loss.item<double>()));
      LV_ASSIGN_OR_RETURN(psnr, group.GlobalMean(Psnr(y.detach(), x)));
      return absl::OkStatus();
    }));
    ++summary.steps_run;
    std::string extra = absl::StrFormat("psnr %.2f dB", psnr);
    if (o.frame0_marker > 0) absl::StrAppend(&extra, absl::StrFormat(" marker %.2f", marker_gap));
    if (o.scale_equivariance > 0) {
      absl::StrAppend(&extra, absl::StrFormat(" half-scale psnr %.2f dB", half_psnr));
    }
    log.Step(step, loss_value, o.batch, lr, o.log_every, extra);
    const bool pause = o.stop_after > 0 && summary.steps_run == o.stop_after;
    if (((step + 1) % o.checkpoint_every == 0 || step + 1 == end || pause) && group.root()) {
      state.next_step = step + 1;
      LV_RETURN_IF_ERROR(SaveTrainState(ckpt, state));
    }
    if (pause && step + 1 < end) {
      summary.first_loss = log.first_window_mean();
      summary.last_loss = log.last_window_mean();
      summary.extra = psnr;
      return summary;  // paused: no final weights yet
    }
  }
  vae->eval();
  if (group.root()) {
    LV_RETURN_IF_ERROR(
        io::WriteWeights(o.work_dir, "vae", io::StateDict(*vae), /*max_shard_bytes=*/0));
    LV_RETURN_IF_ERROR(io::WriteJsonFile(VaeConfigPath(o.work_dir), o.config.ToJson()));
  }
  LV_RETURN_IF_ERROR(group.Barrier());  // the other ranks return once the weights exist
  summary.first_loss = log.first_window_mean();
  summary.last_loss = log.last_window_mean();
  summary.extra = psnr;
  return summary;
}

absl::StatusOr<VaeCheck> CheckVae(const VaeTrainOptions& o, int64_t clips, VaeCheckScenes scenes,
                                  double latent_noise) {
  LV_RETURN_IF_ERROR(Validate(o));
  if (clips < 1) return absl::InvalidArgumentError("the VAE check needs at least one clip");
  if (!(latent_noise >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("latent noise must be >= 0 (normalised latent units), got ", latent_noise));
  }
  const std::vector<eval::EvalCase> cases = scenes == VaeCheckScenes::kEvalSet
                                                ? eval::EvalCases(eval::PromptSet::kAll)
                                                : std::vector<eval::EvalCase>{};
  if (scenes == VaeCheckScenes::kEvalSet && clips > static_cast<int64_t>(cases.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("the evaluation set has ", cases.size(), " scenes; asked for ", clips));
  }
  LV_ASSIGN_OR_RETURN(wan::WanVae vae, wan::CreateWanVae(o.config));
  if (fs::exists(VaeWeightsPath(o.work_dir))) {
    LV_ASSIGN_OR_RETURN(io::TensorMap weights, io::ReadWeights(o.work_dir, "vae"));
    LV_RETURN_IF_ERROR(wan::LoadWanVaeWeights(vae, weights));
  } else {
    TrainState state;
    state.modules = {{"vae", vae.ptr().get()}};
    LV_RETURN_IF_ERROR(LoadTrainState((fs::path(o.work_dir) / "vae.ckpt").string(), &state));
  }
  vae->eval();
  torch::NoGradGuard no_grad;
  VaeCheck check;
  std::vector<eval::VideoScore> scores;
  std::vector<const eval::VideoScore*> seen;
  scores.reserve(clips);
  for (int64_t i = 0; i < clips; ++i) {
    const data::SceneSpec spec =
        scenes == VaeCheckScenes::kEvalSet
            ? cases[i].spec
            : data::SampleScene(MixSeed(o.seed, i, 99), data::Split::kHeldOut);
    LV_ASSIGN_OR_RETURN(torch::Tensor clip, data::Render(spec, o.clip_frames, o.height, o.width));
    torch::Tensor decoded;
    LV_RETURN_IF_ERROR(TorchCall("VAE check", [&]() -> absl::Status {
      const torch::Tensor x = ToModelVideo(clip.unsqueeze(0));
      torch::Tensor z = vae->Encode(x);  // normalised
      if (latent_noise > 0) {
        // Normalised units: Encode divides by latents_std, so noise of std `latent_noise` here
        // is latent_noise * latents_std in the decoder's raw latent.
        at::Generator gen = StepGenerator(o.seed, i, 98);
        z = z + latent_noise * at::randn(z.sizes(), gen, z.options());
      }
      const torch::Tensor y = vae->Decode(z);  // [1, 3, F, H, W]
      decoded = FromModelVideo(y[0]);
      return absl::OkStatus();
    }));
    const double mse =
        (decoded.to(torch::kFloat) - clip.to(torch::kFloat)).pow(2).mean().item<double>();
    check.psnr.push_back(10.0 * std::log10(255.0 * 255.0 / std::max(mse, 1e-10)));
    check.mean_psnr += check.psnr.back() / clips;
    check.truth.push_back(clip);
    check.decoded.push_back(decoded);
    LV_ASSIGN_OR_RETURN(eval::VideoScore score, eval::ScoreVideo(decoded, spec));
    scores.push_back(std::move(score));
    if (scenes == VaeCheckScenes::kEvalSet && !cases[i].held_out) seen.push_back(&scores.back());
  }
  check.scores = eval::Summarize(scores);
  if (!seen.empty()) check.seen_scores = eval::Summarize(seen);
  return check;
}

}  // namespace linvideo::core::train

#include "core/train/dit_trainer.h"

#include <c10/core/InferenceMode.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <filesystem>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/common/status.h"
#include "core/data/prompt.h"
#include "core/data/render.h"
#include "core/data/sampler.h"
#include "core/io/json_file.h"
#include "core/io/safetensors.h"
#include "core/io/state_dict.h"
#include "core/models/wan/dit.h"
#include "core/models/wan/t5_encoder.h"
#include "core/models/wan/tokenizer.h"
#include "core/models/wan/vae.h"
#include "core/models/wan/vae_key_map.h"
#include "core/pipeline/model_folder.h"
#include "core/pipeline/text_to_video.h"
#include "core/sampling/flow_schedule.h"
#include "core/sampling/guidance.h"
#include "core/train/data_parallel.h"
#include "core/train/train_state.h"
#include "kernels/torch_compat.h"

namespace linvideo::core::train {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kClipStream = 7;

absl::Status Validate(const DitTrainOptions& o) {
  auto bad = [](auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  if (o.work_dir.empty() || o.vae_dir.empty() || o.tokenizer_file.empty()) {
    return bad("DiT training needs a work directory, a VAE work directory and a tokenizer file");
  }
  LV_RETURN_IF_ERROR(o.dit.Validate());
  LV_RETURN_IF_ERROR(o.t5.Validate());
  if (o.dit.text_dim != o.t5.dim) {
    return bad("the DiT's text_dim (", o.dit.text_dim, ") must equal the text encoder's dim (",
               o.t5.dim, ")");
  }
  if (o.clips < 1 || o.steps < 1 || o.batch < 1 || o.encode_batch < 1) {
    return bad("clips, steps, batch and encode_batch must be >= 1");
  }
  if (o.frame_batch < 0) return bad("frame_batch must be >= 0, got ", o.frame_batch);
  if (o.object_weight < 0 || !(o.object_scale > 0)) {
    return bad("need object_weight >= 0 and object_scale > 0");
  }
  if (!(o.lr > 0) || !(o.shift > 0) || o.cfg_dropout < 0 || o.cfg_dropout >= 1 || o.ema_decay < 0 ||
      o.ema_decay >= 1) {
    return bad("need lr > 0, shift > 0, cfg_dropout in [0, 1), ema_decay in [0, 1)");
  }
  if (!(o.scenes.layout_jitter < 0.5)) {
    return bad("layout_jitter must be < 0 (random layouts) or in [0, 0.5), got ",
               o.scenes.layout_jitter);
  }
  return absl::OkStatus();
}

absl::StatusOr<wan::WanVae> LoadTrainedVae(const std::string& vae_dir) {
  LV_ASSIGN_OR_RETURN(nlohmann::json json, io::ReadJsonFile(VaeConfigPath(vae_dir)));
  LV_ASSIGN_OR_RETURN(wan::VaeConfig config, wan::VaeConfig::FromJson(json));
  LV_ASSIGN_OR_RETURN(wan::WanVae vae, wan::CreateWanVae(config));
  LV_ASSIGN_OR_RETURN(io::TensorMap weights, io::ReadWeights(vae_dir, "vae"));
  LV_RETURN_IF_ERROR(wan::LoadWanVaeWeights(vae, weights));
  vae->eval();
  return vae;
}

// Unnormalised posterior means of the training clips, [clips, z_dim, F', h, w], encoded once and
// cached in work_dir/latents.safetensors.
absl::StatusOr<torch::Tensor> Latents(const DitTrainOptions& o, const wan::WanVae& vae,
                                      ProgressLog& log) {
  const std::string path = (fs::path(o.work_dir) / "latents.safetensors").string();
  const std::vector<int64_t> shape = {o.clips, vae->config().z_dim, vae->LatentFrames(o.frames),
                                      o.height / vae->config().spatial_stride(),
                                      o.width / vae->config().spatial_stride()};
  if (fs::exists(path)) {
    LV_ASSIGN_OR_RETURN(io::TensorMap cached, io::ReadWeights(o.work_dir, "latents"));
    auto it = cached.find("mu");
    if (it == cached.end() || it->second.sizes() != c10::IntArrayRef(shape)) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " holds latents of another shape than ", c10::str(shape),
                       "; delete it (it is a cache) or use another work directory"));
    }
    return it->second.clone();  // own the memory (the map's tensors view an mmap)
  }
  torch::NoGradGuard no_grad;
  torch::Tensor mu = torch::empty(shape, torch::kFloat);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t begin = 0; begin < o.clips; begin += o.encode_batch) {
    const int64_t end = std::min(o.clips, begin + o.encode_batch);
    std::vector<torch::Tensor> clips;
    for (int64_t i = begin; i < end; ++i) {
      LV_ASSIGN_OR_RETURN(torch::Tensor clip,
                          data::Render(DitTrainingScene(o, i), o.frames, o.height, o.width));
      clips.push_back(clip);
    }
    LV_RETURN_IF_ERROR(TorchCall("encode training clips", [&]() -> absl::Status {
      mu.narrow(0, begin, end - begin)
          .copy_(vae->EncodeDistribution(ToModelVideo(torch::stack(clips))).mu);
      return absl::OkStatus();
    }));
    if (end == o.clips || (end / o.encode_batch) % 25 == 0) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      log.Line(absl::StrFormat("encoded %d/%d clips (%.2f s/clip, eta %.0f s)", end, o.clips,
                               secs / end, secs / end * (o.clips - end)));
    }
  }
  LV_RETURN_IF_ERROR(io::WriteWeights(o.work_dir, "latents", {{"mu", mu}}));
  return mu;
}

// Per-channel statistics of the latents (Wan's latents_mean / latents_std).
void LatentStats(const torch::Tensor& mu, std::vector<double>* mean, std::vector<double>* std) {
  const torch::Tensor m = mu.mean({0, 2, 3, 4});
  const torch::Tensor s = mu.std({0, 2, 3, 4}).clamp_min(1e-4);
  mean->clear();
  std->clear();
  for (int64_t c = 0; c < m.size(0); ++c) {
    mean->push_back(m[c].item<double>());
    std->push_back(s[c].item<double>());
  }
}

// Soft object masks of normalised latents [N, C, F', h, w] -> [N, 1, F', h, w] in [0, 1]: the
// channel-mean absolute deviation from each latent frame's spatial median (the background, which
// is uniform in shapes world), reaching 1 at `scale` latent standard deviations.
torch::Tensor ObjectMasks(const torch::Tensor& latents, double scale) {
  std::vector<torch::Tensor> out;
  for (int64_t begin = 0; begin < latents.size(0); begin += 64) {
    const torch::Tensor x =
        latents.narrow(0, begin, std::min<int64_t>(64, latents.size(0) - begin));
    const torch::Tensor background =
        std::get<0>(x.flatten(3).median(-1)).unsqueeze(-1).unsqueeze(-1);  // [b, C, F', 1, 1]
    out.push_back((x - background).abs().mean(1, /*keepdim=*/true).div(scale).clamp_max(1.0));
  }
  return torch::cat(out, 0).contiguous();
}

struct Models {
  wan::WanModel dit{nullptr};
  wan::T5Encoder t5{nullptr};
};

absl::StatusOr<Models> CreateModels(const DitTrainOptions& o) {
  torch::manual_seed(MixSeed(o.seed, 0, 11));
  Models m;
  LV_ASSIGN_OR_RETURN(m.dit, wan::CreateWanModel(o.dit));
  m.dit->SetFusedGelu(o.fused_gelu);
  LV_ASSIGN_OR_RETURN(m.t5, wan::CreateT5Encoder(o.t5));
  return m;
}

std::string CheckpointPath(const DitTrainOptions& o) {
  return (fs::path(o.work_dir) / "dit.ckpt").string();
}

}  // namespace

absl::Status WriteExport(const DitTrainOptions& o, const wan::VaeConfig& vae_config, Models& m,
                         const Ema& ema_dit, const Ema& ema_t5, int64_t steps);

data::SceneSpec DitTrainingScene(const DitTrainOptions& o, int64_t index) {
  return data::SampleScene(MixSeed(o.seed, static_cast<uint64_t>(index), kClipStream),
                           data::Split::kTrain, o.scenes);
}

absl::StatusOr<TrainSummary> TrainDit(const DitTrainOptions& o) {
  LV_RETURN_IF_ERROR(Validate(o));
  std::error_code ec;
  fs::create_directories(o.work_dir, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot create ", o.work_dir, ": ", ec.message()));
  LV_ASSIGN_OR_RETURN(auto tokenizer, wan::T5Tokenizer::Create(o.tokenizer_file));
  if (tokenizer->vocab_size() > o.t5.vocab) {
    return absl::InvalidArgumentError(absl::StrCat("the tokenizer has ", tokenizer->vocab_size(),
                                                   " pieces but the text encoder's vocab is ",
                                                   o.t5.vocab));
  }
  LV_ASSIGN_OR_RETURN(wan::WanVae vae, LoadTrainedVae(o.vae_dir));
  if (vae->config().z_dim != o.dit.in_dim || vae->config().z_dim != o.dit.out_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("the DiT's in_dim/out_dim must equal the VAE's "
                     "z_dim ",
                     vae->config().z_dim));
  }
  LV_ASSIGN_OR_RETURN(Models m, CreateModels(o));
  m.dit->train();
  m.t5->train();
  std::vector<torch::Tensor> params = m.dit->parameters();
  for (const auto& p : m.t5->parameters()) params.push_back(p);
  torch::optim::AdamW optimizer(
      params, torch::optim::AdamWOptions(o.lr).betas({0.9, 0.99}).weight_decay(o.weight_decay));
  Ema ema_dit(*m.dit), ema_t5(*m.t5);
  TrainState state;
  state.modules = {{"dit", m.dit.ptr().get()}, {"t5", m.t5.ptr().get()}};
  state.optimizers = {{"adamw", &optimizer}};
  state.emas = {{"dit", &ema_dit}, {"t5", &ema_t5}};
  if (absl::Status s = LoadTrainState(CheckpointPath(o), &state); !s.ok() && !absl::IsNotFound(s)) {
    return s;
  }
  const DataParallel& group = DataParallel::Get();
  LV_ASSIGN_OR_RETURN(const Shard shard, group.ShardOf(o.batch, "--batch"));
  LV_ASSIGN_OR_RETURN(const Shard frame_shard, group.ShardOf(o.frame_batch, "--frame-batch"));
  LV_RETURN_IF_ERROR(CheckRanksAgree(state));
  ProgressLog steps_log(
      o.log_file.empty() ? (fs::path(o.work_dir) / "train_dit.log").string() : o.log_file,
      state.next_step, o.steps);
  if (state.next_step > 0) {
    steps_log.Line(absl::StrCat("resuming DiT training at step ", state.next_step));
  }
  // Rank 0 encodes the clips and caches them; the others wait, then read the cache.
  if (!group.root()) LV_RETURN_IF_ERROR(group.Barrier());
  LV_ASSIGN_OR_RETURN(torch::Tensor mu, Latents(o, vae, steps_log));
  if (group.root()) LV_RETURN_IF_ERROR(group.Barrier());
  steps_log.StartClock();                     // samples/s and ETA of the steps, not of the encoding
  wan::VaeConfig vae_config = vae->config();  // exported with the measured latent statistics
  LatentStats(mu, &vae_config.latents_mean, &vae_config.latents_std);
  const auto view = [&](const std::vector<double>& v) {
    return torch::tensor(v, torch::kFloat).view({1, -1, 1, 1, 1});
  };
  const torch::Tensor latents =
      ((mu - view(vae_config.latents_mean)) / view(vae_config.latents_std)).contiguous();
  mu = torch::Tensor();
  {
    // How far each latent frame's mean sits from the per-channel statistics (mean |offset| over
    // channels, in stds). The causal VAE encodes frame 0 alone, so it differs; the DiT has no
    // absolute position embedding, and these offsets are its only cue to which frame is first.
    const torch::Tensor offset = latents.mean({0, 3, 4}).abs().mean(0);  // [F']
    std::string line = "latent frame mean offsets (stds):";
    for (int64_t f = 0; f < offset.size(0); ++f) {
      absl::StrAppend(&line, absl::StrFormat(" %.2f", offset[f].item<double>()));
    }
    steps_log.Line(line);
  }
  torch::Tensor objects;  // [N, 1, F', h, w]
  if (o.object_weight > 0) {
    objects = ObjectMasks(latents, o.object_scale);
    steps_log.Line(absl::StrFormat("object-weighted loss: weight 1 + %g x mask, mean mask %.4f",
                                   o.object_weight, objects.mean().item<double>()));
  }
  if (o.frame_batch > 0) {
    steps_log.Line(
        absl::StrFormat("per step: %d clips + %d single latent frames", o.batch, o.frame_batch));
  }
  TrainSummary summary;
  const int64_t n = latents.size(0);
  for (int64_t step = state.next_step; step < o.steps; ++step) {
    data::Rng rng(MixSeed(o.seed, static_cast<uint64_t>(step), 3000));
    std::vector<int64_t> index;
    std::vector<std::string> prompts;
    std::vector<float> sigmas;
    for (int64_t b = 0; b < o.batch; ++b) {
      const int64_t i = rng.Below(static_cast<int>(n));
      index.push_back(i);
      const int paraphrase = rng.Below(data::kNumParaphrases);
      const bool drop = rng.Uniform() < o.cfg_dropout;
      prompts.push_back(drop ? std::string() : data::Prompt(DitTrainingScene(o, i), paraphrase));
      const double u = rng.Uniform();
      sigmas.push_back(static_cast<float>(o.shift * u / (1.0 + (o.shift - 1.0) * u)));
    }
    // Single-frame samples from their own stream, so frame_batch = 0 leaves the clip batches
    // (and a run's numbers) exactly as before.
    std::vector<int64_t> frame_index, frame_pos;
    std::vector<float> frame_sigmas;
    if (o.frame_batch > 0) {
      data::Rng frame_rng(MixSeed(o.seed, static_cast<uint64_t>(step), 3001));
      for (int64_t b = 0; b < o.frame_batch; ++b) {
        const int64_t i = frame_rng.Below(static_cast<int>(n));
        frame_index.push_back(i);
        frame_pos.push_back(frame_rng.Below(static_cast<int>(latents.size(2))));
        const int paraphrase = frame_rng.Below(data::kNumParaphrases);
        const bool drop = frame_rng.Uniform() < o.cfg_dropout;
        prompts.push_back(drop ? std::string() : data::Prompt(DitTrainingScene(o, i), paraphrase));
        const double u = frame_rng.Uniform();
        frame_sigmas.push_back(static_cast<float>(o.shift * u / (1.0 + (o.shift - 1.0) * u)));
      }
    }
    // Everything above is the combined batch's draw; this process keeps its rows (clips, then
    // single frames).
    index = std::vector<int64_t>(index.begin() + shard.begin,
                                 index.begin() + shard.begin + shard.count);
    sigmas = std::vector<float>(sigmas.begin() + shard.begin,
                                sigmas.begin() + shard.begin + shard.count);
    {
      std::vector<std::string> local(prompts.begin() + shard.begin,
                                     prompts.begin() + shard.begin + shard.count);
      const auto frames_at = prompts.begin() + o.batch + frame_shard.begin;
      local.insert(local.end(), frames_at, frames_at + frame_shard.count);
      prompts = std::move(local);
    }
    if (o.frame_batch > 0) {
      const auto keep = [&](auto& v) {
        v.assign(v.begin() + frame_shard.begin, v.begin() + frame_shard.begin + frame_shard.count);
      };
      keep(frame_index);
      keep(frame_pos);
      keep(frame_sigmas);
    }
    const int64_t batch = shard.count, frame_batch = frame_shard.count;
    LV_ASSIGN_OR_RETURN(wan::TokenizedBatch tokens, tokenizer->Encode(prompts, o.dit.text_len));
    const double lr = LearningRate(o.lr, step, o.warmup, o.steps);
    SetLearningRate(optimizer, lr);
    double loss_value = 0;
    LV_RETURN_IF_ERROR(TorchCall("DiT training step", [&]() -> absl::Status {
      const torch::Tensor x0 = latents.index_select(0, torch::tensor(index, torch::kLong));
      at::Generator gen = StepGenerator(o.seed, step, 4);
      // Noise of the combined batch, this process's rows kept (the same noise per row).
      const torch::Tensor noise = ShardRandn(x0, o.batch, shard, gen);
      const torch::Tensor mask = tokens.mask;  // [B (+ frames), L]
      torch::Tensor context;
      {
        kernels::ScopedCpuBf16Autocast autocast(o.bf16);
        context = m.t5->forward(tokens.ids, mask) * mask.unsqueeze(-1).to(torch::kFloat);
      }
      // Squared error of the predicted velocity for latents [b, z, F', h, w] noised to `sig`.
      const auto velocity_error = [&](const torch::Tensor& x, const torch::Tensor& eps,
                                      const std::vector<float>& sig, const torch::Tensor& ctx) {
        const torch::Tensor sigma = torch::tensor(sig, torch::kFloat);  // [b]
        const torch::Tensor s5 = sigma.view({-1, 1, 1, 1, 1});
        const torch::Tensor xt = (1.0 - s5) * x + s5 * eps;
        torch::Tensor v;
        {
          kernels::ScopedCpuBf16Autocast autocast(o.bf16);
          v = m.dit->forward(xt, sigma * 1000.0, ctx);
        }
        return (v.to(torch::kFloat) - (eps - x)).pow(2);
      };
      // Object weights 1 + object_weight * mask (or 1) of latents [b, 1, F', h, w].
      const auto weights = [&](const torch::Tensor& masks) {
        return objects.defined() ? 1.0 + o.object_weight * masks : torch::ones({1});
      };
      const torch::Tensor err = velocity_error(x0, noise, sigmas, context.narrow(0, 0, batch));
      const torch::Tensor w =
          weights(objects.defined() ? objects.index_select(0, torch::tensor(index, torch::kLong))
                                    : torch::Tensor());
      // Weighted mean normalised by the weights' mean, so the scale stays comparable. With
      // single-frame samples: the weighted squared errors of clips and frames summed over the sum
      // of their weights (the same quantity over both sets of elements).
      //
      // Across processes the normaliser is the combined batch's (global), so the mean of the
      // ranks' gradients is the combined loss's gradient: with equal shards the mean of the
      // ranks' w.mean() is the combined one, and the clips-and-frames ratio becomes
      // WORLD_SIZE * (this rank's numerator) / (the sum of all ranks' denominators).
      torch::Tensor loss;
      if (o.frame_batch == 0) {
        if (objects.defined()) {
          LV_ASSIGN_OR_RETURN(const double w_mean, group.GlobalMean(w.mean().item<double>()));
          loss = (err * w).mean() / w_mean;
        } else {
          loss = err.mean();
        }
      } else {
        std::vector<torch::Tensor> frames, frame_masks;
        for (int64_t b = 0; b < frame_batch; ++b) {
          frames.push_back(latents[frame_index[b]].narrow(1, frame_pos[b], 1));
          if (objects.defined()) {
            frame_masks.push_back(objects[frame_index[b]].narrow(1, frame_pos[b], 1));
          }
        }
        const torch::Tensor f0 = torch::stack(frames);  // [Bf, z, 1, h, w]
        at::Generator frame_gen = StepGenerator(o.seed, step, 5);
        const torch::Tensor frame_noise = ShardRandn(f0, o.frame_batch, frame_shard, frame_gen);
        const torch::Tensor ferr =
            velocity_error(f0, frame_noise, frame_sigmas, context.narrow(0, batch, frame_batch));
        const torch::Tensor fw =
            weights(objects.defined() ? torch::stack(frame_masks) : torch::Tensor());
        LV_ASSIGN_OR_RETURN(
            const double denominator,
            group.GlobalSum((w.expand_as(err).sum() + fw.expand_as(ferr).sum()).item<double>()));
        loss = ((err * w).sum() + (ferr * fw).sum()) *
               (static_cast<double>(group.world_size()) / denominator);
      }
      optimizer.zero_grad();
      loss.backward();
      LV_RETURN_IF_ERROR(group.AverageGradients(params));
      torch::nn::utils::clip_grad_norm_(params, 1.0);
      optimizer.step();
      const double decay = std::min(o.ema_decay, (1.0 + step) / (10.0 + step));
      ema_dit.Update(*m.dit, decay);
      ema_t5.Update(*m.t5, decay);
      LV_ASSIGN_OR_RETURN(loss_value, group.GlobalMean(loss.item<double>()));
      return absl::OkStatus();
    }));
    ++summary.steps_run;
    steps_log.Step(step, loss_value, o.batch, lr, o.log_every);
    const bool pause = o.stop_after > 0 && summary.steps_run == o.stop_after;
    if (((step + 1) % o.checkpoint_every == 0 || step + 1 == o.steps || pause) && group.root()) {
      state.next_step = step + 1;
      LV_RETURN_IF_ERROR(SaveTrainState(CheckpointPath(o), state));
    }
    if (pause && step + 1 < o.steps) {
      summary.first_loss = steps_log.first_window_mean();
      summary.last_loss = steps_log.last_window_mean();
      return summary;  // paused: exported when a later call finishes
    }
  }
  summary.first_loss = steps_log.first_window_mean();
  summary.last_loss = steps_log.last_window_mean();
  if (!o.out_dir.empty() && group.root()) {
    LV_RETURN_IF_ERROR(WriteExport(o, vae_config, m, ema_dit, ema_t5, state.next_step));
  }
  LV_RETURN_IF_ERROR(group.Barrier());  // the other ranks return once the export exists
  return summary;
}

// Writes the model folder: the EMA weights (copied into `m`), `vae_config` (with the latent
// statistics) and the trained VAE weights, plus serving defaults in model_index.json.
absl::Status WriteExport(const DitTrainOptions& o, const wan::VaeConfig& vae_config, Models& m,
                         const Ema& ema_dit, const Ema& ema_t5, int64_t steps) {
  pipeline::ModelFolderContents c;
  c.vae_config = vae_config;
  LV_ASSIGN_OR_RETURN(c.vae, io::ReadWeights(o.vae_dir, "vae"));
  ema_dit.CopyTo(*m.dit);
  ema_t5.CopyTo(*m.t5);
  auto copy = [](const io::TensorMap& map) {
    io::TensorMap out;
    for (const auto& [k, v] : map) out[k] = v.detach().clone();
    return out;
  };
  c.dit_config = o.dit;
  c.dit = copy(io::StateDict(*m.dit));
  c.t5_config = o.t5;
  c.text_encoder = copy(io::StateDict(*m.t5));
  c.tokenizer_model_file = o.tokenizer_file;
  LV_RETURN_IF_ERROR(pipeline::WriteModelFolder(o.out_dir, c));

  const std::string index_path = (fs::path(o.out_dir) / "model_index.json").string();
  LV_ASSIGN_OR_RETURN(nlohmann::json index, io::ReadJsonFile(index_path));
  index["linvideo"] = {{"default_width", o.width},
                       {"default_height", o.height},
                       {"default_frames", o.frames},
                       {"default_steps", o.default_steps},
                       {"default_guidance", o.default_guidance},
                       {"default_shift", o.shift},
                       {"max_width", 4 * o.width},
                       {"max_height", 4 * o.height},
                       {"max_frames", 2 * o.frames - 1},
                       {"max_steps", 100}};
  index["linvideo_training"] = {{"seed", o.seed},
                                {"steps", steps},
                                {"batch", o.batch},
                                {"frame_batch", o.frame_batch},
                                {"clips", o.clips},
                                {"lr", o.lr},
                                {"shift", o.shift},
                                {"cfg_dropout", o.cfg_dropout},
                                {"ema_decay", o.ema_decay},
                                {"object_weight", o.object_weight},
                                {"layout_jitter", o.scenes.layout_jitter},
                                {"precision", o.bf16 ? "bf16" : "fp32"},
                                {"gelu", o.fused_gelu ? "fused" : "aten"}};
  return io::WriteJsonFile(index_path, index);
}

absl::Status ExportDit(const DitTrainOptions& o) {
  LV_RETURN_IF_ERROR(Validate(o));
  LV_ASSIGN_OR_RETURN(wan::WanVae vae, LoadTrainedVae(o.vae_dir));
  ProgressLog log("", 0, 1);
  LV_ASSIGN_OR_RETURN(torch::Tensor mu, Latents(o, vae, log));
  wan::VaeConfig vae_config = vae->config();
  LatentStats(mu, &vae_config.latents_mean, &vae_config.latents_std);
  LV_ASSIGN_OR_RETURN(Models m, CreateModels(o));
  Ema ema_dit(*m.dit), ema_t5(*m.t5);
  TrainState state;  // modules and EMAs only: the optimizer state is not needed to export
  state.modules = {{"dit", m.dit.ptr().get()}, {"t5", m.t5.ptr().get()}};
  state.emas = {{"dit", &ema_dit}, {"t5", &ema_t5}};
  LV_RETURN_IF_ERROR(LoadTrainState(CheckpointPath(o), &state));
  return WriteExport(o, vae_config, m, ema_dit, ema_t5, state.next_step);
}

absl::StatusOr<DitCheck> CheckDit(const std::string& model_dir, int64_t clips,
                                  const std::vector<double>& sigmas, uint64_t seed, bool sample,
                                  bool training_clips) {
  if (clips < 1 || sigmas.empty()) {
    return absl::InvalidArgumentError("the DiT check needs at least one clip and one sigma");
  }
  for (double s : sigmas) {
    if (!(s > 0 && s <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat("sigmas must be in (0, 1], got ", s));
    }
  }
  LV_ASSIGN_OR_RETURN(pipeline::ModelFolder folder, pipeline::ResolveModelFolder(model_dir));
  if (!folder.transformer || !folder.text_encoder || !folder.vae || !folder.tokenizer) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_dir,
                     " is not a whole model folder (transformer, text_encoder, vae, "
                     "tokenizer)"));
  }
  const DeviceOptions device;
  LV_ASSIGN_OR_RETURN(wan::WanModel dit, pipeline::LoadDit(*folder.transformer, device));
  LV_ASSIGN_OR_RETURN(wan::T5Encoder t5, pipeline::LoadTextEncoder(*folder.text_encoder, device));
  LV_ASSIGN_OR_RETURN(wan::WanVae vae, pipeline::LoadVae(*folder.vae, device));
  LV_ASSIGN_OR_RETURN(auto tokenizer, pipeline::LoadTokenizer(*folder.tokenizer));
  pipeline::ModelLimits limits;  // clips at the model's serving size
  LV_RETURN_IF_ERROR(pipeline::ApplyModelIndexLimits(model_dir, limits));
  const int64_t frames = limits.default_frames;
  const int64_t height = limits.default_height;
  const int64_t width = limits.default_width;
  data::SamplerOptions scenes;  // the layouts the model trained on (older exports: anywhere)
  nlohmann::json training = nlohmann::json::object();
  if (auto index = io::ReadJsonFile((fs::path(model_dir) / "model_index.json").string());
      index.ok()) {
    training = index->value("linvideo_training", nlohmann::json::object());
    scenes.layout_jitter = training.value("layout_jitter", scenes.layout_jitter);
  }
  DitTrainOptions trained;  // with training_clips: the seed and sampler the clips were drawn with
  trained.scenes = scenes;
  if (training_clips) {
    if (!training.contains("seed") || !training.contains("clips")) {
      return absl::InvalidArgumentError(absl::StrCat(
          model_dir,
          "/model_index.json has no linvideo_training seed and clips, so its training clips "
          "are not known; run the check on fresh clips instead"));
    }
    trained.seed = training["seed"].get<uint64_t>();
    const int64_t trained_clips = training["clips"].get<int64_t>();
    if (clips > trained_clips) {
      return absl::InvalidArgumentError(
          absl::StrCat("the model trained on ", trained_clips, " clips; asked to check ", clips));
    }
  }
  // `sample` runs on the serving schedule and guidance, as the pipeline resolves them.
  LV_ASSIGN_OR_RETURN(sampling::FlowSchedule schedule,
                      sampling::MakeFlowSchedule(limits.default_steps, limits.default_shift));
  c10::InferenceMode guard;
  DitCheck check;
  check.sigmas = sigmas;
  check.mse.assign(sigmas.size(), 0.0);
  check.object_mse.assign(sigmas.size(), 0.0);
  std::vector<std::vector<eval::VideoScore>> scores(sigmas.size());
  for (int64_t i = 0; i < clips; ++i) {
    const data::SceneSpec spec =
        training_clips ? DitTrainingScene(trained, i)
                       : data::SampleScene(MixSeed(seed, i, 5000), data::Split::kTrain, scenes);
    LV_ASSIGN_OR_RETURN(torch::Tensor clip, data::Render(spec, frames, height, width));
    LV_ASSIGN_OR_RETURN(wan::TokenizedBatch tokens,
                        tokenizer->Encode({data::Prompt(spec, 0), ""}, dit->config().text_len));
    LV_ASSIGN_OR_RETURN(torch::Tensor both, t5->Encode(tokens.ids, tokens.mask));  // [cond; uncond]
    both = both.to(torch::kFloat);
    const torch::Tensor context = both.slice(0, 0, 1);
    std::vector<torch::Tensor> preds;
    LV_RETURN_IF_ERROR(TorchCall("DiT check", [&]() -> absl::Status {
      const torch::Tensor x0 = vae->Encode(ToModelVideo(clip.unsqueeze(0)));  // normalised
      const torch::Tensor mask = ObjectMasks(x0, 1.0);                        // [1, 1, F', h, w]
      at::Generator gen = StepGenerator(seed, i, 6);
      const torch::Tensor noise = at::randn(x0.sizes(), gen, x0.options());
      for (size_t k = 0; k < sigmas.size(); ++k) {
        const double sigma = sigmas[k];
        const torch::Tensor xt = (1.0 - sigma) * x0 + sigma * noise;
        torch::Tensor pred;
        if (!sample) {
          const torch::Tensor t = torch::full({1}, sigma * 1000.0, torch::kFloat);
          const torch::Tensor v = dit->forward(xt, t, context).to(torch::kFloat);
          pred = xt - sigma * v;
        } else {
          std::vector<double> path = {sigma};  // then the schedule's sigmas below it, down to 0
          for (double s : schedule.sigmas) {
            if (s < sigma) path.push_back(s);
          }
          torch::Tensor x = xt;
          for (size_t j = 0; j + 1 < path.size(); ++j) {
            const torch::Tensor t = torch::full({2}, path[j] * 1000.0, torch::kFloat);
            const torch::Tensor out = dit->forward(torch::cat({x, x}), t, both).to(torch::kFloat);
            const torch::Tensor v = sampling::ApplyGuidance(out.slice(0, 0, 1), out.slice(0, 1, 2),
                                                            limits.default_guidance);
            x = x + (path[j + 1] - path[j]) * v;
          }
          pred = x;
        }
        const torch::Tensor err = (pred - x0).pow(2).mean(1, /*keepdim=*/true);  // [1,1,F',h,w]
        check.mse[k] += err.mean().item<double>() / clips;
        check.object_mse[k] +=
            ((err * mask).sum() / mask.sum().clamp_min(1e-6)).item<double>() / clips;
        preds.push_back(FromModelVideo(vae->Decode(pred)[0]));
      }
      return absl::OkStatus();
    }));
    for (size_t k = 0; k < sigmas.size(); ++k) {
      LV_ASSIGN_OR_RETURN(eval::VideoScore score, eval::ScoreVideo(preds[k], spec));
      scores[k].push_back(std::move(score));
    }
    check.truth.push_back(clip);
    check.pred.push_back(std::move(preds));
  }
  for (const auto& per_sigma : scores) check.scores.push_back(eval::Summarize(per_sigma));
  return check;
}

}  // namespace linvideo::core::train

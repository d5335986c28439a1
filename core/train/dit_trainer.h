#pragma once
// Training the Wan DiT and its umT5 text encoder (tiny config) on shapes-world latents with the
// flow-matching objective, then exporting a servable model folder.
//
// Stage 1 (once per work_dir, cached in latents.safetensors): `clips` training-split scenes are
// rendered at the served size and encoded with the trained VAE (posterior mean); the per-channel
// mean/std of those latents become the VAE config's latents_mean/latents_std, so the DiT sees
// unit-scale latents exactly as Wan's pipeline normalises them.
// Stage 2: each step draws `batch` clips and a random paraphrase of each prompt (replaced by the
// empty prompt with probability cfg_dropout, the negative prompt the pipeline uses, so classifier-
// free guidance works), a timestep by Wan's flow-matching rule (u ~ U(0, 1) shifted,
// sigma = shift·u / (1 + (shift − 1)·u), t = 1000·sigma), x_t = (1 − sigma)·x0 + sigma·noise, and
// regresses the velocity noise − x0 (MSE, optionally object-weighted, see object_weight). The umT5
// encoder is trained jointly (its output rows at padding positions are zeroed as at inference).
// With frame_batch > 0 the step also denoises that many single latent frames (see frame_batch). An
// EMA of both is kept and exported. Stage 3: export to `out_dir` (diffusers layout, fp32) with
// serving defaults in model_index.json.
//
// Resumable like TrainVae (work_dir/dit.ckpt). Not thread-safe; one call per work_dir.

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/sampler.h"
#include "core/eval/score.h"
#include "core/models/wan/t5_config.h"
#include "core/models/wan/wan_config.h"
#include "core/train/vae_trainer.h"

namespace linvideo::core::train {

struct DitTrainOptions {
  std::string work_dir;
  std::string vae_dir;          // a VAE work directory (vae.safetensors + vae_config.json)
  std::string tokenizer_file;   // sentencepiece .model
  std::string out_dir;          // exported model folder; empty: do not export
  wan::WanConfig dit;           // text_dim must equal t5.dim, in_dim/out_dim the VAE's z_dim
  wan::T5Config t5;             // vocab must cover the tokenizer
  int64_t clips = 2000;         // distinct training clips encoded once
  data::SamplerOptions scenes;  // how the training clips' scenes are drawn (layout_jitter < 0.5)
  int64_t frames = 33, height = 128, width = 128;
  int64_t encode_batch = 4;
  int64_t steps = 2000;
  int64_t batch = 8;
  // Extra single-latent-frame samples per step (Wan-style joint image/video training): each is
  // one latent frame, drawn uniformly, of a random clip, with that clip's prompt, its own noise
  // and sigma, denoised as a 1-frame video. A frame costs 1/F' of a clip's tokens, so for the
  // same compute the step sees many more independent scenes (colour and shape are per-frame
  // attributes; motion is only learned from the clips). The loss is the weighted mean over the
  // clips' and frames' latent elements together. 0: clips only.
  int64_t frame_batch = 0;
  double lr = 5e-4;
  int64_t warmup = 100;
  double weight_decay = 0.01;
  double cfg_dropout = 0.1;
  double shift = 3.0;  // training shift; exported as the default sampling shift
  double ema_decay = 0.998;
  // Forward passes under CPU bf16 autocast (weights, gradients, optimizer state and the loss stay
  // fp32). On CPUs with AVX512-BF16, oneDNN's bf16 GEMMs are ~5x faster than fp32 BLIS.
  bool bf16 = false;
  // The DiT's GELU(tanh): kernels::GeluTanh (4-7x faster than LibTorch's CPU kernel, one rounding
  // in bf16; the recipe's since v7) or LibTorch's at::gelu (models up to v5 were trained with it;
  // false reproduces them bit for bit).
  bool fused_gelu = true;
  // Object-weighted loss: squared errors are weighted 1 + object_weight * mask, the mask being
  // the latent's channel-mean |deviation| from its frame's spatial median (the uniform
  // background) over object_scale, clamped to 1. Objects cover a few of the latent pixels and
  // are otherwise learned last. 0 disables.
  double object_weight = 0.0;
  double object_scale = 1.0;
  uint64_t seed = 0;
  int64_t log_every = 10;
  int64_t checkpoint_every = 100;
  int64_t stop_after = 0;  // > 0: checkpoint and return after this many steps (resume later)
  std::string log_file;    // empty: work_dir/train_dit.log
  // Serving defaults written to the exported model_index.json.
  int64_t default_steps = 50;
  double default_guidance = 5.0;
};

// The scene of training clip `index` (0 <= index < options.clips): seeded by options.seed and the
// index, laid out by options.scenes.
data::SceneSpec DitTrainingScene(const DitTrainOptions& options, int64_t index);

// Runs whatever is left of stages 1-3. INVALID_ARGUMENT for inconsistent options.
absl::StatusOr<TrainSummary> TrainDit(const DitTrainOptions& options);

// Exports the EMA weights of a DiT work directory's checkpoint (what TrainDit does at the end).
absl::Status ExportDit(const DitTrainOptions& options);

// Denoising check of an exported model folder on `clips` fresh training-split scenes (rendered at
// the model's default size, encoded with its VAE): for each sigma, x_t = (1 − sigma)·x0 +
// sigma·noise, the conditional x0 prediction x_t − sigma·v and its MSE against x0 in normalised
// latent units (all latent pixels, and object pixels only, by ObjectMask with scale 1). The
// decoded predictions come back for a contact sheet. Deterministic given `seed`.
struct DitCheck {
  std::vector<double> sigmas;
  std::vector<double> mse, object_mse;           // per sigma, means over clips
  std::vector<torch::Tensor> truth;              // per clip uint8 [F, H, W, 3]
  std::vector<std::vector<torch::Tensor>> pred;  // per clip, per sigma: decoded x0 prediction
  // Per sigma: the eval detectors on the decoded predictions, scored against each clip's prompt.
  // Where motion adherence falls off with sigma says which noise levels lose the trajectory.
  std::vector<eval::ScoreSummary> scores;
};
// The clips' layouts are the ones the model trained on (model_index.json's
// linvideo_training.layout_jitter; paths anywhere when it is absent).
//
// With `sample`, the prediction for each sigma is not one x0 estimate but a whole guided sample
// from that x_t down to 0: Euler steps on the sigmas of the model's serving schedule below sigma
// (model_index.json's default steps, shift and guidance). Sampling from a noised real clip at
// sigma 0.9 vs 0.98 vs 1 shows which noise levels the sampler loses the trajectory in, which
// one-step predictions cannot: they never see the model's own earlier outputs.
//
// With `training_clips`, the clips are the first `clips` of the model's own training clips
// (model_index.json's linvideo_training seed and clip count) instead of fresh scenes: the same
// check on both says whether the DiT fits its training clips better than new ones (memorisation).
absl::StatusOr<DitCheck> CheckDit(const std::string& model_dir, int64_t clips,
                                  const std::vector<double>& sigmas, uint64_t seed = 0,
                                  bool sample = false, bool training_clips = false);

}  // namespace linvideo::core::train

#pragma once
// Training the Wan VAE (small channel config) on shapes-world clips: reconstruction (L1 + MSE,
// object pixels weighted 1 + object_weight) plus a KL term, on random windows of rendered
// training-split clips, cropped around the subject.
//
// The VAE runs exactly its inference code path (EncodeDistribution with the causal chunking, the
// per-frame causal decode), so what is trained is what serves. Windows are 1 + 4k frames of a
// full-length clip, so objects move at the speed they have in served videos.
//
// Resumable: `work_dir`/vae.ckpt holds the modules, the optimizer and the next step; a call finds
// it and continues. At the end the weights go to `work_dir`/vae.safetensors (official names) and
// the config to `work_dir`/vae_config.json. Not thread-safe; one call at a time per work_dir.

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/eval/score.h"
#include "core/models/wan/vae_config.h"

namespace linvideo::core::train {

struct VaeTrainOptions {
  std::string work_dir;
  wan::VaeConfig config;
  int64_t steps = 1500;
  int64_t batch = 4;
  int64_t clip_frames = 33;           // rendered clip length (the served length)
  int64_t window = 9;                 // frames per training window (1 + 4k)
  int64_t height = 128, width = 128;  // rendered size
  int64_t crop = 64;                  // square crop around the subject (multiple of 8, <= size)
  double lr = 1e-3;
  int64_t warmup = 50;
  double kl_weight = 1e-6;
  double object_weight = 4.0;  // extra loss weight of pixels that are not background
  double edge_weight = 0.0;    // weight of the L1 loss on horizontal/vertical pixel differences
  double first_frame_weight = 1.0;  // pixel-loss weight of frame 0 (coded alone by the causal VAE)
  // > 0: latent frame 0 carries a fixed marker. The loss pulls each channel's spatial mean of
  // frame 0's posterior mean away from that of the later frames by +-frame0_marker channel stds
  // (sign alternating over channels), weight frame0_marker_weight. A Wan DiT has no absolute
  // position embedding; this gives it a clear cue to which latent frame is first even at high
  // noise (Wan's own VAE makes frame 0 distinct by coding it alone; ours only weakly).
  double frame0_marker = 0.0;
  double frame0_marker_weight = 1.0;
  // > 0: scale-equivariance ("diffusability") term of this weight. Each step also decodes the
  // latent average-pooled 2x2 in space and scores it, with the same reconstruction loss, against
  // the input average-pooled 2x2: the latent's coarse scale must carry the picture's coarse scale.
  // Without it the latent is free to code shapes as thin, high-frequency outlines, which a DiT
  // learns slowly. (Scale equivariance as in EQ-VAE, Kouzelis et al. 2025, and Skorokhodov et
  // al. 2025, "Improving the Diffusability of Autoencoders".) Off in the recipe: as a fine-tune of
  // the recipe's VAE it barely changed the latent and cost 1-3 dB (docs/quality.md, session 9).
  double scale_equivariance = 0.0;
  bool bf16 = false;  // encoder and decoder under CPU bf16 autocast (loss in fp32)
  uint64_t seed = 0;
  int64_t log_every = 10;
  int64_t checkpoint_every = 100;
  int64_t stop_after = 0;  // > 0: checkpoint and return after this many steps (resume later)
  // > 0: the run ends at this step (checkpoint and final weights written) although the learning
  // rate follows the schedule of `steps`: a stage cut short at a fixed, reproducible point.
  int64_t stop_at = 0;
  // A VAE work directory whose vae.safetensors initialises a fresh run (fine-tuning stage);
  // empty: random initialisation.
  std::string init_from;
  std::string log_file;  // empty: work_dir/train_vae.log
};

struct TrainSummary {
  int64_t steps_run = 0;  // steps this call ran (0 if the checkpoint was already complete)
  double first_loss = 0;  // mean loss of the first logged window of this call
  double last_loss = 0;   // mean loss of the last logged window
  double extra = 0;       // VAE: PSNR (dB) of the last window's reconstructions
};

// INVALID_ARGUMENT for bad options (says which and what is allowed).
absl::StatusOr<TrainSummary> TrainVae(const VaeTrainOptions& options);

// Reconstruction check on `clips` full-length, full-size clips (seeds never used for training:
// held-out split): encode (posterior mean) + decode with the weights of `options.work_dir`
// (vae.safetensors, or the latest vae.ckpt while training runs). PSNR in dB over [0, 255].
struct VaeCheck {
  double mean_psnr = 0;
  // The eval harness's detectors on the reconstructions, scored against each clip's scene: the
  // ceiling the VAE puts on a DiT's prompt adherence.
  eval::ScoreSummary scores;
  eval::ScoreSummary seen_scores;      // kEvalSet only: the seen prompts among the clips
  std::vector<double> psnr;            // per clip
  std::vector<torch::Tensor> truth;    // uint8 [F, H, W, 3]
  std::vector<torch::Tensor> decoded;  // uint8 [F, H, W, 3]
};
// Which scenes CheckVae reconstructs: `clips` fresh held-out-split samples, or the first `clips`
// scenes of linvideo-eval's fixed evaluation set (12 seen, then 8 held-out), i.e. the exact
// layouts the default model is scored on.
enum class VaeCheckScenes { kHeldOut, kEvalSet };
// `latent_noise` > 0: adds Gaussian noise of that std to the normalised latent (Encode's output,
// the DiT's units when `options.config` carries the model's latents_mean/std) before decoding:
// what a latent error of the size a DiT sample leaves costs the decoded video. Seeded per clip.
absl::StatusOr<VaeCheck> CheckVae(const VaeTrainOptions& options, int64_t clips,
                                  VaeCheckScenes scenes = VaeCheckScenes::kHeldOut,
                                  double latent_noise = 0.0);

// Paths inside a VAE work directory.
std::string VaeWeightsPath(const std::string& work_dir);
std::string VaeConfigPath(const std::string& work_dir);

}  // namespace linvideo::core::train

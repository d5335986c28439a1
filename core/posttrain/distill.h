#pragma once
// Few-step distillation of a (converted) model with DMD2 (distribution matching distillation,
// improved): the second stage of LinVideo's post-training, after the conversion. Three roles:
//  * the generator G, initialised from the base model, samples over a fixed timestep list (e.g.
//    1000, 750, 500, 250 warped by the model's shift) with the fewstep rule of
//    core/sampling/few_step.h: predict x̂₀, re-noise to the next sigma;
//  * the real score: the frozen base model with classifier-free guidance (real_guidance);
//  * the fake score F: a trainable copy of the base, trained with the flow-matching loss on G's
//    samples (no guidance), so it tracks the distribution G currently produces.
// At a re-noised sample x_t = (1 − σ)x₀ + σε of G's output x₀ (σ: t uniform in [min_t, max_t],
// warped by the shift) the distribution-matching gradient is
//   g = (x̂₀_fake(x_t) − x̂₀_real(x_t)) / mean|x₀ − x̂₀_real(x_t)|   (per sample)
// applied as the loss 0.5·‖x₀ − sg(x₀ − g)‖² (mean), whose gradient w.r.t. x₀ is g / numel.
// Two time-scale updates: `fake_updates` fake-score steps per generator step. Backward simulation:
// G trains at its own intermediate states — it runs from noise for k < K steps without gradient
// (k drawn per step), and the gradient flows through its prediction at step k only. An EMA of G
// is what is exported. No GAN head (the Wan DMD configurations leave it out; not built).
// Resumable (work_dir/distill.ckpt holds G, F, the EMA and both optimizers; work_dir/run.json
// the options it was made with, core/train/run_options.h), reproducible given the seed and threads,
// progress in work_dir/distill.log and work_dir/progress.json. Export: the base folder with the EMA
// generator's weights (the base's attention kinds), its sampler declared in model_index.json
// ("linvideo": fewstep over the list, 4 steps, guidance off) and the lineage in
// "linvideo_distillation". Not thread-safe; one run per work_dir.

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/common/runtime.h"
#include "core/posttrain/defaults.h"

namespace linvideo::core::posttrain {

// DMD2's distribution-matching gradient for generator samples x0 [B, ...]: (x0_fake − x0_real)
// divided per sample by mean|x0 − x0_real| (floored at 1e-6); no gradient flows through it.
torch::Tensor DistributionMatchingGradient(const torch::Tensor& x0, const torch::Tensor& x0_fake,
                                           const torch::Tensor& x0_real);

// 0.5·mean((x0 − sg(x0 − grad))²): its gradient w.r.t. x0 is grad / x0.numel().
torch::Tensor DistributionMatchingLoss(const torch::Tensor& x0, const torch::Tensor& grad);

struct DistillOptions {
  std::string base_dir;   // the model to distil (a converted folder; any Wan folder works)
  std::string cache_dir;  // a trajectory cache of base's teacher: prompts' embeddings and shape
  std::string work_dir;   // checkpoint and logs
  std::string out_dir;    // exported folder (must not exist); empty: no export
  // The real score's model; empty: base (DMD2 on the converted model, the recipe). The other
  // choice is the teacher base was converted from (its weights' sha256 is base's lineage's
  // base_weights_sha256): the generator then matches the softmax teacher's distribution.
  std::string real_dir;
  std::vector<int64_t> timesteps = {1000, 750, 500, 250};  // before the shift
  double shift = 0;     // 0: the base's serving default (model_index.json), what it will serve with
  int64_t steps = 400;  // generator updates
  int64_t batch = kDefaultDistillBatch;
  int64_t fake_updates = 5;           // fake-score updates per generator update
  double real_guidance = 3.0;         // CFG of the real score (Wan distillation configs: 3-3.5)
  double lr = 1e-5;                   // generator (Adam)
  double fake_lr = 1e-5;              // fake score (Adam)
  double min_t = 0.02, max_t = 0.98;  // the DM / fake-score timesteps, before the shift
  double ema_decay = 0.99;            // of the generator, per generator update
  bool backward_simulation = true;    // false: G always starts from pure noise (k = 0)
  uint64_t seed = 0;
  DeviceOptions device;  // device only: weights train in fp32
  bool bf16 = false;     // forward passes under bf16 autocast
  int64_t log_every = 10;
  int64_t checkpoint_every = 50;
  int64_t stop_after = 0;  // > 0: checkpoint and return after this many generator updates
  // A resume whose training options (everything above but the folders, steps, device and cadence)
  // differ from the ones its checkpoint was made with is refused unless this is set; the change
  // is then recorded (work_dir/run.json and the lineage's "option_changes").
  bool allow_option_changes = false;
};

// INVALID_ARGUMENT naming the option and what is allowed.
absl::Status ValidateDistillOptions(const DistillOptions& options);

struct DistillSummary {
  int64_t steps = 0;  // generator updates done
  double final_dm_loss = 0, final_fake_loss = 0;
  double seconds = 0;  // this process's training time
  // Updates applied over the whole run (resumes included), read from the optimizers' state:
  // fake_score_updates = fake_updates × generator_updates when the ratio is honoured.
  int64_t generator_updates = 0, fake_score_updates = 0;
  bool finished = false;
  std::vector<int64_t> schedule_timesteps;  // what the model sees (after the shift)
};

absl::StatusOr<DistillSummary> RunDistillation(const DistillOptions& options);

}  // namespace linvideo::core::posttrain

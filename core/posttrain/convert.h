#pragma once
// The LinVideo conversion stage: a teacher DiT + its trajectory cache -> a model folder with
// exactly K linear self-attention layers, trained data-free.
//
//  * Selection. `auto`: selective transfer — every unpinned layer starts hybrid with gate r_init
//  and
//    L = L_objective + λ·(L_con + L_reg) moves the gates (selective_transfer.h); at the end they
//    are binarised. `heuristic`: the K unpinned layers whose linearisation alone (identity feature
//    map) changes the teacher's velocity least on cached points. `layers:a,b,c`: the operator's
//    list. With a fixed list the chosen layers are linear from step 0 and only the objective
//    trains.
//  * Objective. `adm`: from a cached teacher point x_{t_i} on branch b (prompt, or negative prompt
//    with probability uncond_fraction when the cache is guided), the student's own step
//      x̂ = x_{t_i} + (σ_{i+1} − σ_i)·(u_student(x_{t_i}, b) + sg(u_T,guided − u_T,b))
//    (the teacher's guided step with the student's branch-b velocity in place of the teacher's),
//    then AdmLoss at (x̂, σ_{i+1}) with both models' branch-b velocities there (objectives.h).
//    `mse`: the student's velocity at x_{t_i} regressed on the cached teacher velocity.
//  * Schedule (auto): α anneals over anneal_fraction of the steps; the last finetune_fraction
//    trains the binarised student with the gates frozen at 0 / 1.
//  * Everything trains: the DiT weights and feature maps with Adam (lr), the gates with plain SGD
//    (gate_lr; projected back into [0, 1] after each step). No EMA: the stage is short.
//  * Resumable (work_dir/convert.ckpt), reproducible given the seed and the thread count (each
//    step's draws come from train::StepGenerator(seed, step, ·)), progress in work_dir/convert.log.
//  * Export (out_dir): the base folder with the new transformer (per-layer kinds in config.json, no
//    hybrid layer left) and the lineage in model_index.json's "linvideo_conversion".
// Not thread-safe; one run per work_dir.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/common/runtime.h"
#include "core/posttrain/defaults.h"
#include "core/posttrain/objectives.h"

namespace linvideo::core::posttrain {

enum class SelectMode { kAuto, kHeuristic, kLayers };
enum class Objective { kAdm, kMse };

struct LayerChoice {
  SelectMode mode = SelectMode::kAuto;
  std::vector<int64_t> layers;  // kLayers: the operator's list (0-based)
};
// "auto" | "heuristic" | "layers:2,3,5"; INVALID_ARGUMENT says what is allowed.
absl::StatusOr<LayerChoice> ParseLayerChoice(const std::string& text);
std::string LayerChoiceName(const LayerChoice& choice);
// "adm" | "mse".
absl::StatusOr<Objective> ParseObjective(const std::string& text);
const char* ObjectiveName(Objective objective);
// "uniform" | "paper".
absl::StatusOr<AdmWeighting> ParseAdmWeighting(const std::string& text);
const char* AdmWeightingName(AdmWeighting weighting);

// The learning-rate multiplier at `step` of `steps`: 1 before decay_start, then a cosine from 1
// down to `floor` at the last step.
double LearningRateScale(int64_t step, int64_t steps, int64_t decay_start, double floor);

struct ConvertOptions {
  std::string base_dir;       // the teacher model folder
  std::string cache_dir;      // its trajectory cache (linvideo-train trajectories)
  std::string work_dir;       // checkpoint and log
  std::string out_dir;        // exported model folder (must not exist); empty: do not export
  int64_t linear_layers = 0;  // K
  LayerChoice select;
  std::vector<int64_t> pinned = {0};  // kept softmax (auto and heuristic)
  Objective objective = Objective::kAdm;
  int64_t steps = 400;
  int64_t batch = kDefaultConvertBatch;
  double lr = 5e-5;  // DiT weights
  // The linear layers' feature maps W̃ (identity-initialised, new: they need to move much further
  // than the pretrained weights; at lr 5e-5 Adam moves an entry by at most 0.02 in 400 steps).
  // 1e-3 diverged under ADM (docs/linvideo.md, session 12); 2e-4 is the shipped recipe's.
  double feature_map_lr = 2e-4;
  AdmWeighting adm_weighting = AdmWeighting::kUniform;  // objectives.h
  // ADM only: weight β of the MSE to the cached teacher velocity at x_{t_i}, added to the ADM
  // surrogate (0: pure ADM). The one-step ADM signal corrects the student's velocity at step i by
  // its error at step i+1 and never by its own (docs/linvideo.md, "Why one-step ADM diverges");
  // the anchor is the restoring term that makes the error dynamics contract. It must exceed c/2,
  // c = the mean ADM step factor (0.048 on the served schedule); 0.05 is the shipped recipe's.
  double adm_anchor = 0.05;
  double gate_lr = 0.5;  // the gates r: plain SGD (why: convert.cc)
  double lambda = 0.01;  // weight of L_con + L_reg
  double r_init = 0.9;   // see docs/linvideo.md: why not 1
  // α of L_reg anneals 20 -> 2 over this fraction of the steps, then stays at 2.
  double anneal_fraction = 0.35;
  // The last fraction of the steps trains the binarised student: at its start the gates are
  // rounded (Binarize: exactly K linear) and frozen at exactly 0 / 1, so the exported model is the
  // one that trained last (no hybrid mixing left to undo at export). Over this part the learning
  // rates decay (cosine) to lr_floor × their value (every selection mode).
  double finetune_fraction = 0.25;
  double lr_floor = 0.1;
  double uncond_fraction = 0.2;
  int64_t heuristic_points = 16;  // cached points scored per layer for `heuristic`
  uint64_t seed = 0;
  // Train only the self-attention layers (projections, norms, feature maps; gates always train):
  // optimizer state for ~20% of the weights, for large models on small machines. Default: all.
  bool attention_only = false;
  DeviceOptions device;  // device only: weights train in fp32
  bool bf16 = false;     // forward passes under bf16 autocast
  int64_t log_every = 10;
  int64_t checkpoint_every = 50;
  int64_t stop_after = 0;  // > 0: checkpoint and return after this many steps (resume later)
  // DivergenceGuard factor: when the gap runs away the run rolls back to its last checkpoint and
  // goes on with every learning rate halved, at most max_rollbacks times; after that it stops
  // (FAILED_PRECONDITION, nothing exported). 0: only non-finite values count as divergence.
  double divergence_factor = 30.0;
  int64_t max_rollbacks = 3;
  int64_t divergence_window = 50;  // steps averaged by the guard
  // A resume whose training options (the selection, objective, steps, rates, fractions, seed,
  // precision, base and cache; not the folders, device, cadence or divergence guard) differ from
  // the ones its checkpoint was made with is refused unless this is set; the change is then
  // recorded (work_dir/run.json and the lineage's "option_changes"; core/train/run_options.h).
  bool allow_option_changes = false;
};

// Watches the logged velocity gap for a run-away: diverged when a value is not finite, or when the
// mean of the last `window` values exceeds `factor` × the lowest such mean of the last
// 2 × `window` steps. (The student is its own score model under ADM; when its score goes wrong
// the gradient it feeds itself does too: a 400-step run resumed to 800 went from a gap of 0.05 to
// 12.8.) The window is long because one step's gap depends on the timesteps drawn (0.002-0.06
// step to step in a stable run); the reference is recent because the gap rises legitimately when
// a gate reaches 0 (measured: 0.004 with the gates at 0.5, 0.04 once three layers were linear,
// which tripped a guard that compared with the lowest mean of the whole run).
class DivergenceGuard {
 public:
  DivergenceGuard(double factor, int window = 50) : factor_(factor), window_(window) {}
  // Records one value; true once the run has diverged (factor <= 0 only checks finiteness).
  bool Add(double gap);
  // Forgets the current window (after a rollback) but keeps the recent means it compares with.
  void RestartWindow();
  double best_mean() const { return best_; }  // the reference: lowest recent window mean
  double last_mean() const { return last_; }
  int window() const { return window_; }

 private:
  double factor_;
  int window_;
  std::vector<double> recent_, means_;  // the last `window` values; the last 2·window means
  double best_ = -1, last_ = 0;
};

// INVALID_ARGUMENT for options that cannot run on a DiT with `num_layers` layers, each message
// saying what is allowed (K range, pinned/listed indices, steps, rates, fractions).
absl::Status ValidateConvertOptions(const ConvertOptions& options, int64_t num_layers);

struct ConvertSummary {
  std::vector<int64_t> linear;  // the exported linear layers
  std::vector<int64_t> gate_layers;
  std::vector<double> r;  // auto: gates before rounding (gate_layers order)
  bool rounding_agreed = true;
  std::vector<double> heuristic_scores;  // heuristic: per unpinned layer
  int64_t steps = 0;
  double final_objective = 0, final_constraint = 0, final_regularizer = 0;
  double seconds = 0;        // this process's training time
  double train_seconds = 0;  // the whole run's, across resumes (work_dir/run.json)
  int64_t rollbacks = 0;     // divergences rolled back
  double lr_backoff = 1.0;   // 0.5^rollbacks
  bool finished = false;     // false after stop_after
};

absl::StatusOr<ConvertSummary> RunConversion(const ConvertOptions& options);

}  // namespace linvideo::core::posttrain

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
  int64_t batch = 4;
  double lr = 5e-5;      // DiT weights and feature maps
  double gate_lr = 0.5;  // the gates r: plain SGD (why: convert.cc)
  double lambda = 0.01;  // weight of L_con + L_reg
  double r_init = 0.9;   // see docs/linvideo.md: why not 1
  // α of L_reg anneals 20 -> 2 over this fraction of the steps, then stays at 2.
  double anneal_fraction = 0.5;
  // The last fraction of the steps trains the binarised student: at its start the gates are
  // rounded (Binarize: exactly K linear) and frozen at exactly 0 / 1, so the exported model is the
  // one that trained last (no hybrid mixing left to undo at export).
  double finetune_fraction = 0.25;
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
  // DivergenceGuard factor: the run stops (FAILED_PRECONDITION, nothing exported, no checkpoint
  // written past the last good one) when the gap runs away. 0: only non-finite values stop it.
  double divergence_factor = 10.0;
};

// Watches the logged velocity gap for a run-away: diverged when a value is not finite, or when the
// mean of the last `window` values exceeds `factor` × the lowest such mean seen so far. (The
// student is its own score model under ADM; when its score goes wrong the gradient it feeds itself
// does too, and a 400-step run resumed to 800 went from a gap of 0.05 to 12.8.)
class DivergenceGuard {
 public:
  DivergenceGuard(double factor, int window = 10) : factor_(factor), window_(window) {}
  // Records one value; true once the run has diverged (factor <= 0 only checks finiteness).
  bool Add(double gap);
  double best_mean() const { return best_; }
  double last_mean() const { return last_; }

 private:
  double factor_;
  int window_;
  std::vector<double> recent_;
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
  double seconds = 0;     // this process's training time
  bool finished = false;  // false after stop_after
};

absl::StatusOr<ConvertSummary> RunConversion(const ConvertOptions& options);

}  // namespace linvideo::core::posttrain

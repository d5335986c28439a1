#pragma once
// Pieces shared by the training loops (core/train): checkpoints that make a run resumable, the
// progress log, the learning-rate schedule, an exponential moving average of weights, and the
// seeded per-step randomness that makes a run reproducible.
//
// Reproducibility: every random draw of step s comes from a generator seeded by (seed, s)
// (StepGenerator), and the data of step s from SampleScene seeds derived the same way, so a run
// resumed from a checkpoint continues exactly as an uninterrupted one. With the same seed and the
// same thread count the weights are bit-identical; another thread count changes the summation
// order of BLIS/oneDNN reductions and so the last bits.
//
// Thread-compatible; a training loop owns its objects.

#include <ATen/core/Generator.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace linvideo::core::train {

// SplitMix64-style mix of (seed, a, b): independent streams per step and purpose.
uint64_t MixSeed(uint64_t seed, uint64_t a, uint64_t b = 0);
// A CPU generator seeded by MixSeed(seed, step, stream).
at::Generator StepGenerator(uint64_t seed, int64_t step, uint64_t stream);

// Linear warm-up over `warmup` steps, then cosine decay to `final_fraction` of `peak` at `total`.
double LearningRate(double peak, int64_t step, int64_t warmup, int64_t total,
                    double final_fraction = 0.1);
// Sets the learning rate of every parameter group of an Adam/AdamW optimizer.
void SetLearningRate(torch::optim::Optimizer& optimizer, double lr);

// ema = decay·ema + (1 − decay)·param for every parameter (same names, same shapes).
class Ema {
 public:
  // Copies `module`'s parameters as the starting average.
  explicit Ema(const torch::nn::Module& module);
  void Update(const torch::nn::Module& module, double decay);
  // Copies the average into `module` (same architecture).
  void CopyTo(torch::nn::Module& module) const;
  const std::map<std::string, torch::Tensor>& tensors() const { return shadow_; }
  std::map<std::string, torch::Tensor>& mutable_tensors() { return shadow_; }

 private:
  std::map<std::string, torch::Tensor> shadow_;
};

// A resumable checkpoint: named modules, named optimizers, named EMAs and the step that comes
// next. Written atomically (temporary file + rename), so a crash never leaves a torn file.
struct TrainState {
  int64_t next_step = 0;
  std::vector<std::pair<std::string, torch::nn::Module*>> modules;
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> optimizers;
  std::vector<std::pair<std::string, Ema*>> emas;
};
absl::Status SaveTrainState(const std::string& path, const TrainState& state);
// Fills the modules/optimizers/EMAs already listed in `state` and sets next_step. NOT_FOUND if the
// file does not exist; INVALID_ARGUMENT if it does not match the architecture.
absl::Status LoadTrainState(const std::string& path, TrainState* state);
// In a multi-process run (data_parallel.h): FAILED_PRECONDITION unless every rank has the same
// next_step and the same weights in `state`'s modules (all loaded the same checkpoint, or all
// initialised from the same seed). OK on one process.
absl::Status CheckRanksAgree(const TrainState& state);

// Progress lines "step 120/1500 loss 0.0421 (avg 0.0433) 3.1 samples/s lr 4.9e-04 eta 12m05s",
// written to stdout and appended to a log file (flushed every line, so `tail -f` works). In a
// multi-process run (data_parallel.h) only rank 0 writes; the others are silent. `samples` is the
// combined batch, so samples/s is the whole group's.
class ProgressLog {
 public:
  // `path` empty: stdout only. `total_steps` is for the ETA; `first_step` is where this process
  // starts (throughput and ETA count from there).
  ProgressLog(const std::string& path, int64_t first_step, int64_t total_steps);
  // Records one step's loss; prints every `every` steps (and at the last step).
  void Step(int64_t step, double loss, int64_t samples, double lr, int64_t every,
            const std::string& extra = "");
  void Line(const std::string& text);
  // Throughput and ETA count from here on: call it once the steps begin, after any setup (the
  // DiT stage encodes its clips first, which took ~6 of the first run's minutes).
  void StartClock() { start_ = std::chrono::steady_clock::now(); }
  // Mean loss over the steps printed in the last line, and over the first printed window.
  double last_window_mean() const { return last_mean_; }
  double first_window_mean() const { return first_mean_; }

 private:
  std::ofstream file_;
  int64_t first_step_, total_steps_;
  std::chrono::steady_clock::time_point start_;
  int64_t samples_ = 0;
  double window_sum_ = 0;
  int64_t window_n_ = 0;
  double last_mean_ = 0, first_mean_ = -1;
  bool silent_ = false;
};

// Uint8 clips [B, F, H, W, 3] -> float video [B, 3, F, H, W] in [-1, 1].
torch::Tensor ToModelVideo(const torch::Tensor& clips);
// Its inverse for one video: [3, F, H, W] in [-1, 1] -> uint8 frames [F, H, W, 3] (rounded).
torch::Tensor FromModelVideo(const torch::Tensor& video);

}  // namespace linvideo::core::train

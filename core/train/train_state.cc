#include "core/train/train_state.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/common/status.h"
#include "core/train/data_parallel.h"

namespace linvideo::core::train {

absl::Status CheckRanksAgree(const TrainState& state) {
  const DataParallel& group = DataParallel::Get();
  if (!group.distributed()) return absl::OkStatus();
  if (absl::Status s =
          group.CheckSame(static_cast<double>(state.next_step), "the step to resume from");
      !s.ok()) {
    return s;
  }
  std::vector<torch::Tensor> params;
  for (const auto& [name, module] : state.modules) {
    for (const torch::Tensor& p : module->parameters()) params.push_back(p);
  }
  return group.CheckSame(DataParallel::ParameterChecksum(params), "the weights' checksum");
}

namespace fs = std::filesystem;

uint64_t MixSeed(uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t z = seed ^ (a * 0x9E3779B97F4A7C15ULL) ^ (b * 0xC2B2AE3D27D4EB4FULL);
  for (int i = 0; i < 2; ++i) {  // two SplitMix64 finalisation rounds
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
  }
  return z;
}

at::Generator StepGenerator(uint64_t seed, int64_t step, uint64_t stream) {
  return at::detail::createCPUGenerator(MixSeed(seed, static_cast<uint64_t>(step), stream));
}

double LearningRate(double peak, int64_t step, int64_t warmup, int64_t total,
                    double final_fraction) {
  if (warmup > 0 && step < warmup) return peak * static_cast<double>(step + 1) / warmup;
  const double span = std::max<int64_t>(1, total - warmup);
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / span);
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return peak * (final_fraction + (1.0 - final_fraction) * cosine);
}

void SetLearningRate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) {
    if (auto* adamw = dynamic_cast<torch::optim::AdamWOptions*>(&group.options())) {
      adamw->lr(lr);
    } else if (auto* adam = dynamic_cast<torch::optim::AdamOptions*>(&group.options())) {
      adam->lr(lr);
    }
  }
}

Ema::Ema(const torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (const auto& item : module.named_parameters()) {
    shadow_[item.key()] = item.value().detach().clone();
  }
}

void Ema::Update(const torch::nn::Module& module, double decay) {
  torch::NoGradGuard no_grad;
  for (const auto& item : module.named_parameters()) {
    shadow_.at(item.key()).lerp_(item.value(), 1.0 - decay);
  }
}

void Ema::CopyTo(torch::nn::Module& module) const {
  torch::NoGradGuard no_grad;
  for (auto& item : module.named_parameters()) item.value().copy_(shadow_.at(item.key()));
}

absl::Status SaveTrainState(const std::string& path, const TrainState& state) {
  return TorchCall("save checkpoint " + path, [&]() -> absl::Status {
    torch::serialize::OutputArchive archive;
    archive.write("next_step", torch::tensor(state.next_step, torch::kLong));
    for (const auto& [name, module] : state.modules) {
      torch::serialize::OutputArchive sub;
      module->save(sub);
      archive.write("module." + name, sub);
    }
    for (const auto& [name, optimizer] : state.optimizers) {
      torch::serialize::OutputArchive sub;
      optimizer->save(sub);
      archive.write("optimizer." + name, sub);
    }
    for (const auto& [name, ema] : state.emas) {
      torch::serialize::OutputArchive sub;
      int64_t i = 0;
      for (const auto& [key, tensor] : ema->tensors()) sub.write(absl::StrCat("t", i++), tensor);
      archive.write("ema." + name, sub);
    }
    const std::string tmp = path + ".tmp";
    archive.save_to(tmp);
    fs::rename(tmp, path);
    return absl::OkStatus();
  });
}

absl::Status LoadTrainState(const std::string& path, TrainState* state) {
  if (!fs::exists(path)) return absl::NotFoundError(absl::StrCat("no checkpoint at ", path));
  absl::Status status = TorchCall("load checkpoint " + path, [&]() -> absl::Status {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    torch::Tensor step;
    archive.read("next_step", step);
    state->next_step = step.item<int64_t>();
    for (auto& [name, module] : state->modules) {
      torch::serialize::InputArchive sub;
      archive.read("module." + name, sub);
      module->load(sub);
    }
    for (auto& [name, optimizer] : state->optimizers) {
      torch::serialize::InputArchive sub;
      archive.read("optimizer." + name, sub);
      optimizer->load(sub);
    }
    for (auto& [name, ema] : state->emas) {
      torch::serialize::InputArchive sub;
      archive.read("ema." + name, sub);
      int64_t i = 0;
      torch::NoGradGuard no_grad;
      for (auto& [key, tensor] : ema->mutable_tensors()) {
        torch::Tensor loaded;
        sub.read(absl::StrCat("t", i++), loaded);
        tensor.copy_(loaded);
      }
    }
    return absl::OkStatus();
  });
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(status.message(),
                     " (was the checkpoint written by a run with another configuration? "
                     "delete it or use a fresh work directory)"));
  }
  return status;
}

ProgressLog::ProgressLog(const std::string& path, int64_t first_step, int64_t total_steps)
    : first_step_(first_step),
      total_steps_(total_steps),
      start_(std::chrono::steady_clock::now()),
      silent_(!DataParallel::Get().root()) {
  if (!path.empty() && !silent_) file_.open(path, std::ios::app);
}

void ProgressLog::Line(const std::string& text) {
  if (silent_) return;
  std::cout << text << std::endl;
  if (file_.is_open()) file_ << text << std::endl;
}

void ProgressLog::Step(int64_t step, double loss, int64_t samples, double lr, int64_t every,
                       const std::string& extra) {
  samples_ += samples;
  window_sum_ += loss;
  ++window_n_;
  const bool last = step + 1 == total_steps_;
  if ((step + 1) % std::max<int64_t>(1, every) != 0 && !last) return;
  const double mean = window_sum_ / window_n_;
  last_mean_ = mean;
  if (first_mean_ < 0) first_mean_ = mean;
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int64_t done = step + 1 - first_step_;
  const double eta = done > 0 ? secs / done * (total_steps_ - step - 1) : 0.0;
  const int64_t eta_s = static_cast<int64_t>(eta);
  Line(absl::StrFormat("step %d/%d loss %.5f (last %d: %.5f) %.2f samples/s lr %.2e eta %dm%02ds%s",
                       step + 1, total_steps_, loss, window_n_, mean,
                       secs > 0 ? samples_ / secs : 0.0, lr, eta_s / 60, eta_s % 60,
                       extra.empty() ? "" : " " + extra));
  window_sum_ = 0;
  window_n_ = 0;
}

torch::Tensor ToModelVideo(const torch::Tensor& clips) {
  // [B, F, H, W, 3] uint8 -> [B, 3, F, H, W] float in [-1, 1]
  return clips.permute({0, 4, 1, 2, 3}).to(torch::kFloat).div(127.5).sub(1.0).contiguous();
}

torch::Tensor FromModelVideo(const torch::Tensor& video) {
  return video.permute({1, 2, 3, 0})
      .add(1.0)
      .mul(127.5)
      .round()
      .clamp(0, 255)
      .to(torch::kUInt8)
      .contiguous();
}

}  // namespace linvideo::core::train

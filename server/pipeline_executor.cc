#include "server/pipeline_executor.h"

#include <cstring>
#include <optional>

#include "core/common/status.h"
#include "kernels/cuda_stream.h"

namespace linvideo::server {
namespace {

class PipelineState : public StepState {
 public:
  explicit PipelineState(std::unique_ptr<core::pipeline::RequestState> s) : s(std::move(s)) {}
  int64_t step() const override { return s->step; }
  int64_t total_steps() const override { return s->total_steps(); }
  std::unique_ptr<core::pipeline::RequestState> s;
  // Recorded on the stepping thread's stream after the last step: the decode, on its own stream,
  // starts only after the work that produced the final latents.
  kernels::StreamMark finished;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Executor>> PipelineExecutor::Create(
    const core::pipeline::PipelineOptions& options, int cache_entries, int64_t cache_bytes) {
  LV_ASSIGN_OR_RETURN(auto pipeline, core::pipeline::TextToVideoPipeline::Create(options));
  return std::unique_ptr<Executor>(
      new PipelineExecutor(std::move(pipeline), cache_entries, cache_bytes));
}

absl::StatusOr<std::vector<std::unique_ptr<StepState>>> PipelineExecutor::Start(
    const std::vector<const GenerationParams*>& params) {
  // Encode the distinct texts not in the cache, all in one batch.
  std::vector<std::string> missing;
  auto need = [&](const std::string& t) {
    if (cache_.count(t)) {
      ++cache_hits_;
    } else if (std::find(missing.begin(), missing.end(), t) == missing.end()) {
      missing.push_back(t);
    }
  };
  for (const GenerationParams* p : params) {
    need(p->prompt);
    if (core::params::UsesCfg(*p)) need(p->negative_prompt);
  }
  std::map<std::string, torch::Tensor> fresh;
  if (!missing.empty()) {
    LV_ASSIGN_OR_RETURN(std::vector<torch::Tensor> emb, pipeline_->EncodeText(missing));
    for (size_t i = 0; i < missing.size(); ++i) fresh[missing[i]] = emb[i];
  }
  auto lookup = [&](const std::string& t) { return fresh.count(t) ? fresh[t] : cache_[t]; };
  std::vector<std::unique_ptr<StepState>> out;
  for (const GenerationParams* p : params) {
    torch::Tensor uncond = core::params::UsesCfg(*p) ? lookup(p->negative_prompt) : torch::Tensor();
    LV_ASSIGN_OR_RETURN(auto s, pipeline_->InitRequest(*p, lookup(p->prompt), uncond));
    out.push_back(std::make_unique<PipelineState>(std::move(s)));
  }
  for (auto& [text, emb] : fresh) {
    if (cache_entries_ <= 0) break;
    const int64_t bytes = static_cast<int64_t>(emb.nbytes());
    if (bytes > cache_max_bytes_) continue;
    cache_[text] = emb;
    cache_order_.push_back(text);
    cache_bytes_ += bytes;
    while (static_cast<int>(cache_order_.size()) > cache_entries_ ||
           cache_bytes_ > cache_max_bytes_) {
      auto oldest = cache_.find(cache_order_.front());
      cache_bytes_ -= static_cast<int64_t>(oldest->second.nbytes());
      cache_.erase(oldest);
      cache_order_.pop_front();
    }
  }
  return out;
}

absl::Status PipelineExecutor::Step(const std::vector<StepState*>& batch) {
  std::vector<core::pipeline::RequestState*> states;
  states.reserve(batch.size());
  for (StepState* b : batch) states.push_back(static_cast<PipelineState*>(b)->s.get());
  LV_RETURN_IF_ERROR(pipeline_->Step(states));
  for (StepState* b : batch) {
    auto* ps = static_cast<PipelineState*>(b);
    if (ps->s->done()) {
      LV_RETURN_IF_ERROR(core::TorchCall(
          "Step", [&] { ps->finished = kernels::StreamMark::Record(ps->s->latents.device()); }));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<media::VideoFrames> PipelineExecutor::Decode(const StepState& state) {
  const auto& ps = static_cast<const PipelineState&>(state);
  // On a GPU the decode runs on a side stream of this thread, so it overlaps the steps the engine
  // thread keeps issuing (limits.overlap_decode) instead of queueing behind them on one stream. It
  // waits, on the device, for the steps that produced its latents; the state (and so the latents'
  // memory) outlives the copy of the frames to the host below, which ends the side stream's work.
  std::optional<kernels::SideStreamScope> side;
  LV_RETURN_IF_ERROR(core::TorchCall("Decode", [&] {
    side.emplace(ps.s->latents.device());
    ps.finished.WaitOnCurrentStream();
  }));
  absl::StatusOr<torch::Tensor> decoded = pipeline_->Decode(*ps.s);
  if (!decoded.ok()) {
    // Kernels queued before the failure may still read the latents, which the caller frees next
    // (into the default stream's pool): wait for them first.
    (void)core::TorchCall("Decode", [&] { side->Synchronize(); });
    return decoded.status();
  }
  torch::Tensor frames = *std::move(decoded);
  return core::TorchCall("Decode", [&]() -> absl::StatusOr<media::VideoFrames> {
    torch::Tensor f = frames.to(torch::kCPU).to(torch::kUInt8).contiguous();  // [F, H, W, 3]
    if (f.dim() != 4 || f.size(3) != 3)
      return absl::InternalError("Decode returned a tensor that is not [F, H, W, 3]");
    media::VideoFrames v;
    v.frames = static_cast<int>(f.size(0));
    v.height = static_cast<int>(f.size(1));
    v.width = static_cast<int>(f.size(2));
    v.rgb.resize(f.numel());
    std::memcpy(v.rgb.data(), f.data_ptr<uint8_t>(), v.rgb.size());
    return v;
  });
}

absl::Status PipelineExecutor::WarmUp() {
  // The smallest request the model accepts: proves weights, text encoder, DiT and VAE run.
  GenerationParams p;
  p.prompt = "warm-up";
  p.width = std::max(limits().min_size, limits().width_multiple());
  p.height = std::max(limits().min_size, limits().height_multiple());
  p.frames = 1;
  p.steps = limits().fixed_timesteps.empty() ? 1 : 0;  // a distilled model runs its own list
  p.guidance = 0;
  LV_ASSIGN_OR_RETURN(GenerationParams resolved, core::params::Resolve(p, limits()));
  LV_ASSIGN_OR_RETURN(auto states, Start({&resolved}));
  while (!states[0]->done()) LV_RETURN_IF_ERROR(Step({states[0].get()}));
  LV_ASSIGN_OR_RETURN(media::VideoFrames frames, Decode(*states[0]));
  if (frames.frames != 1) return absl::InternalError("warm-up decoded an unexpected frame count");
  return absl::OkStatus();
}

ExecutorFactory MakePipelineExecutorFactory(const ServerConfig& config) {
  return [config](const std::string& dir) -> absl::StatusOr<std::unique_ptr<Executor>> {
    core::pipeline::PipelineOptions o;
    o.model_dir = dir;
    LV_ASSIGN_OR_RETURN(o.device.device, core::ParseDevice(config.device));
    LV_ASSIGN_OR_RETURN(o.device.dtype, core::ParseDtype(config.dtype));
    if (!config.vae_dtype.empty()) {
      LV_ASSIGN_OR_RETURN(o.vae_dtype, core::ParseDtype(config.vae_dtype));
    }
    o.threads = config.threads;
    return PipelineExecutor::Create(o, config.limits.text_cache_entries,
                                    int64_t{config.limits.text_cache_mb} << 20);
  };
}

}  // namespace linvideo::server

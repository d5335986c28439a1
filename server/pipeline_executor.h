#pragma once
// PipelineExecutor: the Executor over core's TextToVideoPipeline (one model folder = one
// checkpoint). Adds what the engine needs on top of the step API: batched text encoding across the
// requests admitted together, an embedding cache keyed by text (per executor, so a checkpoint swap
// starts with an empty cache), and a warm-up generation. Thread safety: as Executor; the cache is
// touched only by the engine thread (Start).

#include <deque>
#include <map>
#include <memory>
#include <string>

#include "core/pipeline/text_to_video.h"
#include "server/config.h"
#include "server/executor.h"

namespace linvideo::server {

class PipelineExecutor : public Executor {
 public:
  // The text-embedding cache holds at most `cache_entries` texts and `cache_bytes` of tensors
  // (either 0: no cache), the oldest evicted first.
  static absl::StatusOr<std::unique_ptr<Executor>> Create(
      const core::pipeline::PipelineOptions& options, int cache_entries, int64_t cache_bytes);

  const ModelLimits& limits() const override { return pipeline_->limits(); }
  absl::StatusOr<std::vector<std::unique_ptr<StepState>>> Start(
      const std::vector<const GenerationParams*>& params) override;
  absl::Status Step(const std::vector<StepState*>& batch) override;
  absl::StatusOr<media::VideoFrames> Decode(const StepState& state) override;
  absl::Status WarmUp() override;
  int64_t cache_bytes_limit() const override { return cache_entries_ > 0 ? cache_max_bytes_ : 0; }

  int64_t cache_hits() const { return cache_hits_; }
  int64_t cache_bytes() const { return cache_bytes_; }  // held by the text-embedding cache

 private:
  PipelineExecutor(std::unique_ptr<core::pipeline::TextToVideoPipeline> pipeline, int cache_entries,
                   int64_t cache_bytes)
      : pipeline_(std::move(pipeline)),
        cache_entries_(cache_bytes > 0 ? cache_entries : 0),
        cache_max_bytes_(cache_bytes) {}
  std::unique_ptr<core::pipeline::TextToVideoPipeline> pipeline_;
  int cache_entries_;
  int64_t cache_max_bytes_;
  int64_t cache_bytes_ = 0;  // of the tensors in cache_
  std::map<std::string, torch::Tensor> cache_;
  std::deque<std::string> cache_order_;  // FIFO eviction
  int64_t cache_hits_ = 0;
};

// The factory linvideo-server uses for --executor=pipeline (device, dtype, threads from config).
ExecutorFactory MakePipelineExecutorFactory(const ServerConfig& config);

}  // namespace linvideo::server

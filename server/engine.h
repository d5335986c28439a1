#pragma once
// Engine: the one thread that owns model execution. Loop: admit -> plan (Scheduler) -> start newly
// admitted requests (batched text encoding) -> run one step for the batch -> update -> emit
// progress. Finished requests go to a worker pool for VAE decode + FFmpeg encode, so the next steps
// are not blocked. gRPC handlers call Submit/Cancel/Find from any thread; they never block on the
// model. Admin mutations are either registry swaps (atomic; requests pin their model) or flags.
// Thread safety: all public methods are thread-safe.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/config.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/request.h"
#include "server/scheduler.h"

namespace linvideo::server {

struct SubmitOptions {
  std::string request_id;  // empty: generated
  std::string model;
  GenerationParams params;  // unresolved
  OutputKind output = OutputKind::kMp4;
  int fps = 16;
  int priority = 1;  // rank 0..2
  absl::Time deadline = absl::InfiniteFuture();
  bool streaming = false;
};

class Engine {
 public:
  // `registry` and `metrics` must outlive the engine. Starts the engine thread and workers.
  Engine(const ServerConfig& config, ModelRegistry* registry, Metrics* metrics);
  ~Engine();  // Stop()s

  // Validates (INVALID_ARGUMENT / NOT_FOUND / RESOURCE_EXHAUSTED over the cost budget), then
  // enqueues (RESOURCE_EXHAUSTED when the queue is full; UNAVAILABLE when draining or paused).
  // A known request_id returns the existing request (ALREADY_EXISTS for streaming calls).
  absl::StatusOr<std::shared_ptr<ServeRequest>> Submit(const SubmitOptions& options);
  // Cancels a queued/running request (no-op when already finished). NOT_FOUND for unknown ids.
  absl::Status Cancel(const std::string& id);
  std::shared_ptr<ServeRequest> Find(const std::string& id) const;

  void Pause(bool paused);
  bool paused() const { return paused_; }
  // Refuses new work for good; in-flight work continues.
  void Drain();
  bool draining() const { return draining_; }
  // Waits until nothing is queued, running or encoding; false on timeout. Returns the remaining
  // count.
  int WaitIdle(absl::Duration timeout);
  int Outstanding() const;
  // Stops the threads; unfinished requests fail with UNAVAILABLE.
  void Stop();

 private:
  void Loop();
  void RunWorker();
  void StartAdmitted(const std::vector<ServeRequest*>& admitted);
  void FinishDenoising(std::shared_ptr<ServeRequest> r);
  void Encode(std::shared_ptr<ServeRequest> r);
  void Fail(ServeRequest* r, const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishQueueState(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireResults(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ServerConfig& config_;
  ModelRegistry* registry_;
  Metrics* metrics_;

  // Held around model compute (Start/Step/Decode) unless limits.overlap_decode; owned by the
  // registry, which also holds it for a new checkpoint's warm-up.
  absl::Mutex& compute_mu_;
  mutable absl::Mutex mu_;
  Scheduler scheduler_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<ServeRequest>> requests_ ABSL_GUARDED_BY(mu_);
  std::map<SchedEntry*, ServeRequest*> by_entry_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  int encoding_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::shared_ptr<ServeRequest>> work_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> paused_{false}, draining_{false};
  std::atomic<uint64_t> next_id_{1};

  std::thread engine_thread_;
  std::vector<std::thread> workers_;
};

// Latent tokens of one DiT pass for `p` (F' x H/16 x W/16) and CFG passes (2 with guidance > 1).
int64_t LatentTokens(const GenerationParams& p);
int CfgPasses(const GenerationParams& p);

}  // namespace linvideo::server

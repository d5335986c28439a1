#pragma once
// Prometheus metrics of the server (prometheus-cpp). One Metrics object per server; it owns the
// registry. The HTTP exposer is separate (StartExposer) because prometheus-cpp's Exposer takes ~2 s
// to stop: tests share one or go without. Thread safety: every method is thread-safe.

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace linvideo::server {

class Metrics {
 public:
  Metrics();

  void CountRequest(const std::string& rpc, const std::string& code);
  void ObserveLatency(double end_to_end_s, double queue_s, double compute_s, double decode_s,
                      double encode_s);
  void SetQueueDepth(int priority_rank, int depth);
  void SetRunning(int running);
  void ObserveStep(int batch_size, double seconds, int64_t tokens);
  void SetCheckpoint(const std::string& model, int64_t version, const std::string& path);
  void CountSwap(const std::string& model, bool ok);
  void SetServing(bool serving);
  // The request journal (state_dir): stored results, their bytes, the journal's records.
  void SetStoredResults(int64_t count, int64_t bytes, int64_t journal_records);
  // Finished requests remembered for Get, their results held in memory, and how many more were
  // forgotten before their TTL (limits.max_finished_requests, max_stored_results_mb).
  void SetFinishedRequests(int64_t count, int64_t memory_bytes, int64_t forgotten);
  // A batched start or step that failed and was retried one request at a time (stage=start|step).
  void CountBatchSplit(const std::string& stage);
  // The step budget a bucket (BucketKey::ToString) of `model` is held to since a batch of it ran
  // out of device memory (Scheduler::LimitSteps), in tokens per step; 0 once lifted.
  void SetStepLimit(const std::string& model, const std::string& bucket, int64_t tokens);
  // linvideo_device_memory_bytes{device, kind=used|total} (kernels/device_memory.h).
  void SetDeviceMemory(const std::string& device, int64_t used_bytes, int64_t total_bytes);

  // Post-training jobs. `counts`: jobs per (kind, state), every state present (0s included).
  void SetJobCounts(const std::map<std::pair<std::string, std::string>, int>& counts);
  void SetJobProgress(const std::string& job, double fraction,
                      const std::map<std::string, double>& losses);
  void ClearJob(const std::string& job);  // drops its progress and loss series once it ends
  void ObserveJobDuration(const std::string& kind, const std::string& state, double seconds);
  void CountJobSwap(const std::string& model, bool ok);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
  prometheus::Histogram& JobDuration(const std::string& kind, const std::string& state);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Histogram *e2e_, *queue_, *compute_, *decode_, *encode_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Gauge& running_;
  prometheus::Histogram& batch_size_;
  prometheus::Histogram& step_seconds_;
  prometheus::Counter& tokens_;
  prometheus::Counter& steps_;
  prometheus::Family<prometheus::Gauge>& checkpoint_;
  prometheus::Family<prometheus::Counter>& swaps_;
  prometheus::Gauge& serving_;
  prometheus::Family<prometheus::Gauge>& stored_;
  prometheus::Family<prometheus::Gauge>& finished_;
  prometheus::Counter& forgotten_;
  prometheus::Family<prometheus::Counter>& batch_splits_;
  prometheus::Family<prometheus::Gauge>& step_limit_;
  prometheus::Family<prometheus::Gauge>& device_memory_;
  prometheus::Family<prometheus::Gauge>& jobs_;
  prometheus::Family<prometheus::Gauge>& job_progress_;
  prometheus::Family<prometheus::Gauge>& job_loss_;
  prometheus::Family<prometheus::Histogram>& job_duration_;
  prometheus::Family<prometheus::Counter>& job_swaps_;
  absl::Mutex mu_;
  std::map<std::string, prometheus::Gauge*> checkpoint_series_ ABSL_GUARDED_BY(mu_);  // by model
  std::map<std::string, std::vector<prometheus::Gauge*>> job_series_ ABSL_GUARDED_BY(mu_);
};

// Serves `metrics` on http://ADDRESS/metrics. The bound port is GetListeningPorts()[0].
absl::StatusOr<std::unique_ptr<prometheus::Exposer>> StartExposer(const std::string& address,
                                                                  const Metrics& metrics);

}  // namespace linvideo::server

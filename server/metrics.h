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

#include <memory>
#include <string>

#include "absl/status/statusor.h"

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

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
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
};

// Serves `metrics` on http://ADDRESS/metrics. The bound port is GetListeningPorts()[0].
absl::StatusOr<std::unique_ptr<prometheus::Exposer>> StartExposer(const std::string& address,
                                                                  const Metrics& metrics);

}  // namespace linvideo::server

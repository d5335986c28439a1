#include "server/metrics.h"

#include <CivetServer.h>

#include <algorithm>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/log.h"
#include "server/thread_stack.h"

namespace linvideo::server {
namespace {

// Where civetweb's log messages go while StartExposer runs on this thread (null otherwise).
thread_local std::string* civet_startup_log = nullptr;

prometheus::Histogram::BucketBoundaries SecondsBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
          2.5,   5,      10,    25,   50,    100,  250, 500,  1000};
}

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(prometheus::BuildCounter()
                    .Name("linvideo_requests_total")
                    .Help("RPCs handled, by method and gRPC status code")
                    .Register(*registry_)),
      latency_(prometheus::BuildHistogram()
                   .Name("linvideo_request_latency_seconds")
                   .Help("Generation latency by phase: end_to_end, queue, compute, decode, encode")
                   .Register(*registry_)),
      e2e_(&latency_.Add({{"phase", "end_to_end"}}, SecondsBuckets())),
      queue_(&latency_.Add({{"phase", "queue"}}, SecondsBuckets())),
      compute_(&latency_.Add({{"phase", "compute"}}, SecondsBuckets())),
      decode_(&latency_.Add({{"phase", "decode"}}, SecondsBuckets())),
      encode_(&latency_.Add({{"phase", "encode"}}, SecondsBuckets())),
      queue_depth_(prometheus::BuildGauge()
                       .Name("linvideo_queue_depth")
                       .Help("Queued (not yet running) requests by priority")
                       .Register(*registry_)),
      running_(prometheus::BuildGauge()
                   .Name("linvideo_running_requests")
                   .Help("Requests admitted to the engine and not finished denoising")
                   .Register(*registry_)
                   .Add({})),
      batch_size_(
          prometheus::BuildHistogram()
              .Name("linvideo_batch_size")
              .Help("Requests stepped together per denoising step")
              .Register(*registry_)
              .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 3, 4, 6, 8, 12, 16, 32, 64})),
      step_seconds_(prometheus::BuildHistogram()
                        .Name("linvideo_step_duration_seconds")
                        .Help("Wall time of one batched denoising step")
                        .Register(*registry_)
                        .Add({}, SecondsBuckets())),
      tokens_(prometheus::BuildCounter()
                  .Name("linvideo_tokens_total")
                  .Help("Latent tokens denoised (x CFG passes); rate() gives tokens/s")
                  .Register(*registry_)
                  .Add({})),
      steps_(prometheus::BuildCounter()
                 .Name("linvideo_steps_total")
                 .Help("Batched denoising steps run")
                 .Register(*registry_)
                 .Add({})),
      checkpoint_(prometheus::BuildGauge()
                      .Name("linvideo_checkpoint_info")
                      .Help("1 for the active checkpoint of each model")
                      .Register(*registry_)),
      swaps_(prometheus::BuildCounter()
                 .Name("linvideo_checkpoint_swaps_total")
                 .Help("Checkpoint loads/rollbacks by model and result (ok, failed)")
                 .Register(*registry_)),
      serving_(prometheus::BuildGauge()
                   .Name("linvideo_serving")
                   .Help("1 while accepting new work (not draining or paused)")
                   .Register(*registry_)
                   .Add({})),
      stored_(prometheus::BuildGauge()
                  .Name("linvideo_stored_results")
                  .Help("Finished Submit results kept in state_dir (what=count|bytes) and the "
                        "journal's records (what=journal_records)")
                  .Register(*registry_)),
      finished_(prometheus::BuildGauge()
                    .Name("linvideo_finished_requests")
                    .Help("Finished requests remembered for Get (what=count) and their results "
                          "held in memory (what=memory_bytes; stored ones are in "
                          "linvideo_stored_results)")
                    .Register(*registry_)),
      forgotten_(prometheus::BuildCounter()
                     .Name("linvideo_requests_forgotten_total")
                     .Help("Finished requests forgotten before limits.result_ttl_s because more "
                           "than limits.max_finished_requests ended, or their results in memory "
                           "passed limits.max_stored_results_mb")
                     .Register(*registry_)
                     .Add({})),
      batch_splits_(prometheus::BuildCounter()
                        .Name("linvideo_batch_splits_total")
                        .Help("Batched starts or steps (stage=start|step) that failed and were "
                              "run again one request at a time, so that only the requests that "
                              "fail alone fail (e.g. a batch too large for the device memory)")
                        .Register(*registry_)),
      step_limit_(prometheus::BuildGauge()
                      .Name("linvideo_step_token_limit")
                      .Help("Tokens per step a bucket (model@version/shape/sampler/cfg) is held "
                            "to since a batch of it ran out of device memory and its requests fit "
                            "one by one; 0 once lifted after scheduler.limit_probe_steps clean "
                            "steps (absent: no such failure; the configured budget applies)")
                      .Register(*registry_)),
      device_memory_(prometheus::BuildGauge()
                         .Name("linvideo_device_memory_bytes")
                         .Help("Memory of the compute device (kind=used|total): the CUDA device's "
                               "total minus free, and the host (device=cpu) as this process's "
                               "resident set and the physical memory; every 5 s")
                         .Register(*registry_)),
      jobs_(prometheus::BuildGauge()
                .Name("linvideo_jobs")
                .Help("Post-training jobs known to the server, by kind and state")
                .Register(*registry_)),
      job_progress_(prometheus::BuildGauge()
                        .Name("linvideo_job_progress")
                        .Help("Fraction of a running job done (0..1)")
                        .Register(*registry_)),
      job_loss_(prometheus::BuildGauge()
                    .Name("linvideo_job_loss")
                    .Help("Latest loss terms of a running job, by term")
                    .Register(*registry_)),
      job_duration_(prometheus::BuildHistogram()
                        .Name("linvideo_job_duration_seconds")
                        .Help("Wall time of ended jobs, by kind and final state")
                        .Register(*registry_)),
      job_swaps_(prometheus::BuildCounter()
                     .Name("linvideo_job_swaps_total")
                     .Help("Checkpoint swaps caused by jobs, by model and result (ok, failed)")
                     .Register(*registry_)) {
  for (int p = 0; p < 3; ++p) SetQueueDepth(p, 0);
  for (const char* stage : {"start", "step"}) batch_splits_.Add({{"stage", stage}});  // 0s shown
}

void Metrics::CountRequest(const std::string& rpc, const std::string& code) {
  requests_.Add({{"rpc", rpc}, {"code", code}}).Increment();
}

void Metrics::ObserveLatency(double e2e, double queue, double compute, double decode,
                             double encode) {
  e2e_->Observe(e2e);
  queue_->Observe(queue);
  compute_->Observe(compute);
  decode_->Observe(decode);
  encode_->Observe(encode);
}

void Metrics::SetQueueDepth(int priority_rank, int depth) {
  static const char* kNames[] = {"low", "normal", "high"};
  queue_depth_.Add({{"priority", kNames[priority_rank]}}).Set(depth);
}

void Metrics::SetRunning(int running) { running_.Set(running); }

void Metrics::SetStoredResults(int64_t count, int64_t bytes, int64_t journal_records) {
  stored_.Add({{"what", "count"}}).Set(static_cast<double>(count));
  stored_.Add({{"what", "bytes"}}).Set(static_cast<double>(bytes));
  stored_.Add({{"what", "journal_records"}}).Set(static_cast<double>(journal_records));
}

void Metrics::CountBatchSplit(const std::string& stage) {
  batch_splits_.Add({{"stage", stage}}).Increment();
}

void Metrics::SetStepLimit(const std::string& model, const std::string& bucket, int64_t tokens) {
  step_limit_.Add({{"model", model}, {"bucket", bucket}}).Set(static_cast<double>(tokens));
}

void Metrics::SetFinishedRequests(int64_t count, int64_t memory_bytes, int64_t forgotten) {
  finished_.Add({{"what", "count"}}).Set(static_cast<double>(count));
  finished_.Add({{"what", "memory_bytes"}}).Set(static_cast<double>(memory_bytes));
  forgotten_.Increment(static_cast<double>(forgotten));
}

void Metrics::SetDeviceMemory(const std::string& device, int64_t used_bytes, int64_t total_bytes) {
  device_memory_.Add({{"device", device}, {"kind", "used"}}).Set(static_cast<double>(used_bytes));
  device_memory_.Add({{"device", device}, {"kind", "total"}}).Set(static_cast<double>(total_bytes));
}

void Metrics::ObserveStep(int batch_size, double seconds, int64_t tokens) {
  batch_size_.Observe(batch_size);
  step_seconds_.Observe(seconds);
  tokens_.Increment(static_cast<double>(tokens));
  steps_.Increment();
}

void Metrics::SetCheckpoint(const std::string& model, int64_t version, const std::string& path) {
  // The model's swap counters exist from its first load at 0: a counter born at 1 by the first
  // failed swap would show no increase(), and the swap-failed alert would miss it.
  swaps_.Add({{"model", model}, {"result", "ok"}});
  swaps_.Add({{"model", model}, {"result", "failed"}});
  // One series per model: the active checkpoint's (the previous one is removed).
  absl::MutexLock lock(&mu_);
  prometheus::Gauge& g =
      checkpoint_.Add({{"model", model}, {"version", absl::StrCat(version)}, {"path", path}});
  g.Set(1);
  prometheus::Gauge*& active = checkpoint_series_[model];
  if (active != nullptr && active != &g) checkpoint_.Remove(active);
  active = &g;
}

void Metrics::CountSwap(const std::string& model, bool ok) {
  swaps_.Add({{"model", model}, {"result", ok ? "ok" : "failed"}}).Increment();
}

void Metrics::SetServing(bool serving) { serving_.Set(serving ? 1 : 0); }

void Metrics::SetJobCounts(const std::map<std::pair<std::string, std::string>, int>& counts) {
  for (const auto& [key, n] : counts) {
    jobs_.Add({{"kind", key.first}, {"state", key.second}}).Set(n);
    // Durations of every ended state exist from the start at 0, so the first failure shows as an
    // increase (LinvideoJobFailed).
    const std::string& state = key.second;
    if (state == "succeeded" || state == "failed" || state == "gate_failed" ||
        state == "cancelled") {
      JobDuration(key.first, state);
    }
  }
}

void Metrics::SetJobProgress(const std::string& job, double fraction,
                             const std::map<std::string, double>& losses) {
  absl::MutexLock lock(&mu_);
  std::vector<prometheus::Gauge*>& series = job_series_[job];
  prometheus::Gauge& p = job_progress_.Add({{"job", job}});
  p.Set(fraction);
  if (series.empty()) series.push_back(&p);
  for (const auto& [term, value] : losses) {
    prometheus::Gauge& g = job_loss_.Add({{"job", job}, {"term", term}});
    g.Set(value);
    if (std::find(series.begin(), series.end(), &g) == series.end()) series.push_back(&g);
  }
}

void Metrics::ClearJob(const std::string& job) {
  absl::MutexLock lock(&mu_);
  auto it = job_series_.find(job);
  if (it == job_series_.end()) return;
  for (size_t i = 0; i < it->second.size(); ++i) {
    if (i == 0) {
      job_progress_.Remove(it->second[i]);
    } else {
      job_loss_.Remove(it->second[i]);
    }
  }
  job_series_.erase(it);
}

prometheus::Histogram& Metrics::JobDuration(const std::string& kind, const std::string& state) {
  return job_duration_.Add({{"kind", kind}, {"state", state}},
                           prometheus::Histogram::BucketBoundaries{10, 30, 60, 300, 600, 1800, 3600,
                                                                   7200, 14400, 28800, 86400});
}

void Metrics::ObserveJobDuration(const std::string& kind, const std::string& state,
                                 double seconds) {
  JobDuration(kind, state).Observe(seconds);
}

void Metrics::CountJobSwap(const std::string& model, bool ok) {
  job_swaps_.Add({{"model", model}, {"result", ok ? "ok" : "failed"}}).Increment();
}

absl::StatusOr<std::unique_ptr<prometheus::Exposer>> StartExposer(const std::string& address,
                                                                  const Metrics& metrics) {
  // civetweb reports why it could not start only through its log callback (prometheus-cpp's
  // exception says "null context ... Possible problem binding to port" whatever the cause), so
  // the messages logged while the exposer starts, on this thread, go into the error; later ones
  // (from civetweb's own threads, about single requests) go to the log.
  std::string startup_log;
  civet_startup_log = &startup_log;
  absl::Cleanup stop_capturing = [] { civet_startup_log = nullptr; };
  CivetCallbacks callbacks;  // civetweb copies them
  callbacks.log_message = [](const mg_connection*, const char* message) -> int {
    if (civet_startup_log != nullptr) {
      absl::StrAppend(civet_startup_log, civet_startup_log->empty() ? "" : "; ", message);
    } else {
      LV_LOG(WARNING) << "metrics endpoint (civetweb): " << message;
    }
    return 1;  // handled: civetweb prints nothing itself
  };
  try {
    auto exposer = std::make_unique<prometheus::Exposer>(address, /*num_threads=*/1, &callbacks);
    exposer->RegisterCollectable(metrics.registry());
    return exposer;
  } catch (const std::exception& e) {
    // A thread that could not start: say how much static TLS its stack had to hold.
    const bool threads = absl::StrContains(startup_log, "thread");
    return absl::UnavailableError(absl::StrCat(
        "cannot serve metrics on ", address, ": ", e.what(),
        startup_log.empty() ? "" : absl::StrCat(" (civetweb: ", startup_log, ")"),
        threads ? absl::StrCat("; static TLS of this process: ", StaticTlsBytes() / 1024,
                               " KiB, added to every thread stack (server/thread_stack.h)")
                : ""));
  }
}

}  // namespace linvideo::server

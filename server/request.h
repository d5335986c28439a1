#pragma once
// ServeRequest: one generation request as it moves through the server. Shared (shared_ptr) by the
// gRPC handler that streams its events, the engine, the decode/encode workers and the results
// table. Fields marked "immutable" are set before it is enqueued. `entry` and `state` belong to the
// engine (under its lock / on its thread). Everything else is guarded by `mu`.

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/executor.h"
#include "server/model_registry.h"
#include "server/scheduler.h"

namespace linvideo::server {

enum class Phase { kQueued, kRunning, kDone, kFailed, kCancelled };
enum class OutputKind { kMp4, kWebm, kPngFrames };

struct ServeEvent {
  enum Kind { kQueued, kStarted, kProgress, kChunk, kCompleted, kFailed } kind;
  int a = 0,
      b = 0;  // queued: position | started: batch size | progress: step, total | chunk: frame
  std::string data;   // chunk bytes
  bool last = false;  // chunk: last chunk of the result
};

struct RequestStats {
  double queue_s = 0, compute_s = 0, decode_s = 0, encode_s = 0, total_s = 0;
  int max_batch = 0;
  int64_t video_bytes = 0;
};

struct ServeRequest {
  // Immutable after Submit.
  std::string id;
  GenerationParams params;  // resolved
  OutputKind output = OutputKind::kMp4;
  int fps = 16;
  absl::Time created;
  std::shared_ptr<const LoadedModel> model;  // pinned: the request finishes on this checkpoint
  bool streaming = false;                    // Generate (events consumed) vs Submit (polled)

  // Engine-owned.
  SchedEntry entry;
  std::unique_ptr<StepState> state;
  absl::Time started;

  // Guarded by mu.
  mutable absl::Mutex mu;
  std::deque<ServeEvent> events ABSL_GUARDED_BY(mu);
  Phase phase ABSL_GUARDED_BY(mu) = Phase::kQueued;
  int position ABSL_GUARDED_BY(mu) = 0;
  int step ABSL_GUARDED_BY(mu) = 0;
  absl::Status error ABSL_GUARDED_BY(mu);
  std::vector<std::string> result ABSL_GUARDED_BY(mu);  // one blob (video) or one PNG per frame
  std::string mime ABSL_GUARDED_BY(mu);
  RequestStats stats ABSL_GUARDED_BY(mu);
  absl::Time finished ABSL_GUARDED_BY(mu) = absl::InfiniteFuture();

  bool Terminal() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return phase == Phase::kDone || phase == Phase::kFailed || phase == Phase::kCancelled;
  }
  void Push(ServeEvent e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (streaming) events.push_back(std::move(e));
  }
  // Waits up to `timeout` for an event; false on timeout.
  bool PopEvent(ServeEvent* out, absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu) {
    absl::MutexLock lock(&mu);
    auto has = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !events.empty(); };
    if (!mu.AwaitWithTimeout(absl::Condition(&has), timeout)) return false;
    *out = std::move(events.front());
    events.pop_front();
    return true;
  }
};

}  // namespace linvideo::server

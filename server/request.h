#pragma once
// ServeRequest: one generation request as it moves through the server, and the events a streaming
// caller receives.
//
// Ownership and hand-off (shared_ptr: the gRPC handler that follows it, the request table and the
// output stage each hold one):
//  * Immutable fields are set by Engine::Submit before the request is enqueued.
//  * `entry` and `state` are the engine's: `entry` under the engine's lock; `state` is created by
//    the engine thread when the request is admitted, stepped only by the engine thread, and handed
//    with the request to the output stage when its last step ran (the engine no longer touches it
//    after that); the output stage decodes and frees it.
//  * Everything else (phase, events, result, stats) is guarded by `mu`; the handler reads it.

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/executor.h"
#include "server/model_registry.h"
#include "server/output_format.h"
#include "server/request_phase.h"
#include "server/scheduler.h"

namespace linvideo::server {

// Events of a streaming request, in order: Queued* (Started Progress*)? (Completed | Failed);
// a request cancelled, expired or failed before it started gets Failed without Started.
struct QueuedEvent {
  int position = 0;  // 1 = next to start
};
struct StartedEvent {
  int batch_size = 0;  // requests admitted together
};
struct ProgressEvent {
  int step = 0, total_steps = 0;
};
struct CompletedEvent {};  // result, mime and stats are on the request
struct FailedEvent {};     // the error is on the request
using ServeEvent =
    std::variant<QueuedEvent, StartedEvent, ProgressEvent, CompletedEvent, FailedEvent>;

struct RequestStats {
  double queue_s = 0, compute_s = 0, decode_s = 0, encode_s = 0, total_s = 0;
  double start_s = 0;  // of compute_s: text encoding and initial latents (shared by a batch)
  int max_batch = 0;
  int64_t video_bytes = 0;
};

struct ServeRequest : std::enable_shared_from_this<ServeRequest> {
  // Immutable after Submit, except `params` and `model_version`: Engine::MoveQueued may move a
  // request that has not started to a rolled-back-to checkpoint (it writes them under `mu` and
  // the engine's lock; they are fixed once the request starts).
  std::string id;
  GenerationParams requested;  // as submitted (what MoveQueued resolves again)
  GenerationParams params;     // resolved
  OutputFormat output;         // resolved
  absl::Time created;
  std::string model_name;  // the checkpoint it runs on, for replies (kept after `model` is let go)
  int64_t model_version = 0;
  bool streaming = false;  // Generate (events consumed) vs Submit (polled)

  // Engine-owned. Pinned while the request runs: it finishes on this checkpoint even across a
  // swap. Released by its last user (the output stage after the decode, or the engine when it
  // aborts the request), so finished results kept for Get do not keep replaced checkpoints in
  // memory (20 swaps grew the server by ~6 MB per swap before). Only the engine thread and the
  // output stage read it; replies use model_name / model_version.
  std::shared_ptr<const LoadedModel> model;

  // Engine-owned (see the header comment).
  SchedEntry entry;
  std::unique_ptr<StepState> state;

  // Guarded by mu.
  mutable absl::Mutex mu;
  std::deque<ServeEvent> events ABSL_GUARDED_BY(mu);
  RequestPhase phase ABSL_GUARDED_BY(mu) = RequestPhase::kQueued;
  int position ABSL_GUARDED_BY(mu) = 0;
  int step ABSL_GUARDED_BY(mu) = 0;
  absl::Status error ABSL_GUARDED_BY(mu);
  std::shared_ptr<const EncodedOutput> result ABSL_GUARDED_BY(mu);  // set with kDone
  // Set when the result was moved to the state folder (Submit'ed requests with a state_dir):
  // `result` then keeps only the MIME type and Get reads the blobs from this file.
  std::string result_file ABSL_GUARDED_BY(mu);
  // A streaming Generate's PNG frames once its call wrote all of them: `result` then keeps only the
  // MIME type (Get never returns several files; a call that broke off keeps them until the TTL).
  bool result_delivered ABSL_GUARDED_BY(mu) = false;
  // A streaming request whose Generate call ended before delivering its video (the client went
  // away): replaceable by a retried Generate with its id even if it completed.
  bool abandoned ABSL_GUARDED_BY(mu) = false;
  RequestStats stats ABSL_GUARDED_BY(mu);
  absl::Time finished ABSL_GUARDED_BY(mu) = absl::InfiniteFuture();

  bool Terminal() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return IsTerminal(phase); }
  void Push(ServeEvent e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (streaming) events.push_back(std::move(e));
  }
  // Ends the request with `status` (CANCELLED -> kCancelled, else kFailed) unless it already
  // ended. Returns false when it had.
  bool Fail(const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu);
  // Waits up to `timeout` for an event; false on timeout.
  bool PopEvent(ServeEvent* out, absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu);
};

}  // namespace linvideo::server

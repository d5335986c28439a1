#pragma once
// Engine: the request lifecycle and the one thread that owns model execution. Loop: admit ->
// plan (Scheduler) -> start newly admitted requests (batched text encoding, prepared text state)
// -> run one step for the batch -> update -> emit progress. Requests whose last step ran go to the
// OutputStage (decode + encode on workers), so the next steps are not blocked. gRPC handlers call
// Submit/Cancel/Find from any thread; they never block on the model. Admin mutations are either
// registry swaps (atomic; requests pin their model) or flags.
// Thread safety: all public methods are thread-safe. See request.h for who owns which part of a
// request when.

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/compute_device.h"
#include "server/config.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/output_stage.h"
#include "server/request.h"
#include "server/request_journal.h"
#include "server/request_table.h"
#include "server/scheduler.h"

namespace linvideo::server {

struct SubmitOptions {
  std::string request_id;  // empty: generated
  std::string model;
  GenerationParams params;  // unresolved
  OutputFormat output;      // unresolved
  int priority = 1;         // rank 0..2
  absl::Time deadline = absl::InfiniteFuture();
  bool streaming = false;
  // A request recovered from the journal at start: not journaled again, and admitted even over
  // scheduler.max_queue (it was accepted before the restart).
  bool recovered = false;
};

class Engine {
 public:
  // `registry`, `compute`, `metrics` and `journal` must outlive the engine (all but `registry` may
  // be null; without a journal Submit'ed requests live in memory only). Starts the engine thread
  // and the output stage's workers.
  Engine(const ServerConfig& config, ModelRegistry* registry, ComputeDevice* compute,
         Metrics* metrics, RequestJournal* journal = nullptr);
  ~Engine();  // Stop()s

  // Resolves the request against its model (INVALID_ARGUMENT / NOT_FOUND), costs it
  // (RESOURCE_EXHAUSTED over the cost or step budget), then enqueues it (RESOURCE_EXHAUSTED when
  // the queue is full; UNAVAILABLE when draining or paused). A known request_id returns the
  // existing request (ALREADY_EXISTS for streaming calls, except that a streaming call takes
  // the id of an earlier streaming request that was cancelled or failed, and runs again).
  // Generated request ids end in "." + `suffix` from now on (the replica, replica_router.h).
  void SetIdSuffix(const std::string& suffix);
  absl::StatusOr<std::shared_ptr<ServeRequest>> Submit(const SubmitOptions& options);
  // Brings back the requests RequestJournal::Open found: ended ones answer Get again, pending ones
  // are queued again (in their original order); one that cannot run any more (its model is gone,
  // its parameters no longer fit) ends FAILED_PRECONDITION saying why. Call before serving.
  // Returns how many were queued again.
  int Recover(const std::vector<RecoveredRequest>& recovered);
  // After a Rollback to `to`: the requests queued on checkpoint `from_version` of the same model
  // that have not started move to `to`, resolved again from what they asked for (the restored
  // checkpoint's defaults; their place in the queue is kept), and so does a Submit that resolved
  // against it while this ran. One that `to` refuses (its limits or the server's budgets) ends
  // FAILED_PRECONDITION: nothing new runs on a rolled-back checkpoint. Started requests finish on
  // the weights they began with. Returns how many moved.
  int MoveQueued(int64_t from_version, const std::shared_ptr<const LoadedModel>& to);
  // Cancels a queued/running request (no-op when already finished). NOT_FOUND for unknown ids.
  absl::Status Cancel(const std::string& id);
  // The same for a request the caller holds: a Generate whose client went away cancels its own
  // request, never a later one that took its id.
  void Cancel(ServeRequest& request);
  std::shared_ptr<ServeRequest> Find(const std::string& id) const;

  void Pause(bool paused);
  bool paused() const { return paused_; }
  // Refuses new work for good; in-flight work continues.
  void Drain();
  bool draining() const { return draining_; }
  // Waits until nothing is queued, running or finishing; returns how many still are (0 = idle).
  int WaitIdle(absl::Duration timeout);
  int Outstanding() const;
  // Stops the threads; unfinished requests fail with UNAVAILABLE.
  void Stop();

 private:
  // A request resolved against `model` (its defaults and limits) and costed: RESOURCE_EXHAUSTED
  // over the cost or step budget, INVALID_ARGUMENT for what the model or the output refuses.
  struct Admission {
    GenerationParams params;
    int64_t tokens = 0;
    int64_t token_budget = 0;  // its model's step budget (0: unlimited)
    BucketKey key;
  };
  absl::StatusOr<Admission> Admit(const LoadedModel& model, const GenerationParams& requested,
                                  const OutputFormat& output, bool streaming) const;
  // Puts `r` on `model` as admitted by `a` (params, version, scheduler key and costs); returns
  // the checkpoint it was on, for the caller to let go of outside the engine's lock.
  static std::shared_ptr<const LoadedModel> Pin(ServeRequest& r,
                                                std::shared_ptr<const LoadedModel> model,
                                                Admission a);
  // A queued request ends CANCELLED at once; a running one is marked (stops within a step).
  void CancelLocked(ServeRequest& r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Loop();
  void StartAdmitted(const std::vector<ServeRequest*>& admitted);
  void RunStep(const std::vector<ServeRequest*>& batch);
  // After a batched step failed `together` and its requests were stepped again one by one
  // (`ran_alone`, with their `result`): when the batch ran out of memory and every request
  // fits alone, its bucket's steps are held below the batch's tokens (Scheduler::LimitSteps),
  // so later steps do not pay a failed batched attempt each.
  void LimitAfterSplit(const std::vector<ServeRequest*>& batch, const absl::Status& together,
                       const std::vector<absl::Status>& result, const std::vector<bool>& ran_alone)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes a request from the scheduler (if still there), frees its state and fails it.
  // `journal`: record the end (false when the server stops: the request runs after the restart).
  void Abort(ServeRequest& r, const absl::Status& status, bool journal = true)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The output stage's hooks: store a done request's result before it is published (returns the
  // file, "" when kept in memory); journal the end of one that failed there.
  std::string Store(const ServeRequest& r, const EncodedOutput& out, const RequestStats& stats,
                    absl::Time finished);
  void Finished(ServeRequest& r);
  // Expires, caps and compacts the journal; forgets the requests it dropped.
  void MaintainJournal(absl::Time now);
  // The journal's stored results and records, to /metrics.
  void PublishJournalUsage();
  void PublishQueueState(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int OutstandingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ServerConfig& config_;
  ModelRegistry* registry_;
  ComputeDevice* compute_;
  Metrics* metrics_;
  RequestJournal* journal_;

  mutable absl::Mutex mu_;
  Scheduler scheduler_ ABSL_GUARDED_BY(mu_);
  RequestTable table_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  int finishing_ ABSL_GUARDED_BY(mu_) = 0;  // handed to output_ and not yet finished
  // Checkpoint versions rolled back, by model name (MoveQueued): never queued on again.
  std::map<std::string, std::set<int64_t>> rolled_back_ ABSL_GUARDED_BY(mu_);
  // Ended requests' states and checkpoint references (Abort), for Loop to free outside the lock.
  // (Models declared first: destroyed after the states.)
  std::vector<std::shared_ptr<const LoadedModel>> released_models_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<StepState>> released_states_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> paused_{false}, draining_{false};

  OutputStage output_;
  std::thread engine_thread_;
};

}  // namespace linvideo::server

#pragma once
// Serving limits from device memory (GPU batching): on an accelerator the step batch is bounded by
// memory, not by a fixed request count. With flash / memory-efficient softmax attention and linear
// attention no N² buffer exists, so a DiT step's extra device memory grows linearly with the tokens
// it runs (latent tokens × CFG passes) and with the requests in it (each brings its text states:
// every layer's cross-attention K/V, whatever the video's size):
//   used(n, t) = resident + fixed + per_request · n + per_token · t.
// The server measures that plane once at start (MeasureStepMemory: a step of the default request
// alone, two of them at once, and the largest request the limits allow alone, after every model is
// loaded), keeps a margin of the device free, reserves a decode's peak when decodes overlap the
// steps, and sets the scheduler's batch size and token budget from what is left
// (DeriveMemoryBudget). A largest allowed request that cannot fit is an error at start, not an
// out-of-memory at the first such request.

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/config.h"
#include "server/executor.h"

namespace linvideo::server {

struct StepMemorySample {
  int64_t tokens = 0;      // step tokens run (latent tokens × CFG passes, summed over the batch)
  int64_t used_bytes = 0;  // device bytes in use after it (the caching allocator keeps its peak)
  int requests = 1;        // requests in that step
};

struct StepMemory {
  int64_t resident_bytes = 0;  // in use after loading, before any step (weights, contexts)
  // Non-decreasing tokens, at least two token counts. Two with the same requests give the per-token
  // cost; then two with different requests the per-request one (without such pairs the per-request
  // cost is folded into the per-token slope, which over-estimates it: safe, not tight).
  std::vector<StepMemorySample> samples;
  int64_t decode_bytes = 0;  // a decode's extra peak over the steps' (0: not measured)
};

struct MemoryBudgetInput {
  // Held back besides the margin: a hot swap's second model, the executors' caches.
  int64_t reserve_bytes = 0;
  int64_t total_bytes = 0;  // the device's memory
  StepMemory measured;
  double margin = 0.1;          // fraction of the device left free (fragmentation, other users)
  bool overlap_decode = false;  // decodes run beside steps: their peak is reserved
  int64_t request_tokens = 0;   // step tokens of the default request: the batch-size unit
  int64_t largest_request_tokens = 0;  // step tokens of the largest request the limits allow
  int max_batch_cap = 64;              // the scheduler's own maximum
};

struct MemoryBudget {
  // DeriveServingBudget: the smallest of the models' budgets (for a model loaded later under a
  // new name); each model's own is in model_token_budgets.
  int64_t token_budget = 0;
  std::map<std::string, int64_t> model_token_budgets;
  int max_batch = 1;
  double bytes_per_token = 0;
  double bytes_per_request = 0;  // per request in a step, beside its tokens (text states)
  int64_t fixed_bytes = 0;       // per-step overhead independent of tokens (workspaces)
  double usable_bytes = 0;       // for the batch's requests and tokens (after margin and reserves)
  std::string summary;           // one line for the log: the numbers and how they were derived
};

// RESOURCE_EXHAUSTED when the largest allowed request does not fit (saying what fits and what to
// lower); FAILED_PRECONDITION when the samples show no measurable growth (nothing to scale from);
// INVALID_ARGUMENT for fewer than two samples or non-increasing tokens.
absl::StatusOr<MemoryBudget> DeriveMemoryBudget(const MemoryBudgetInput& input);

// How the device's memory is read: the bytes in use (cudaMemGetInfo: total − free) and a release
// of the caching allocator's unused blocks, so each probe below starts from the resident weights.
struct DeviceMemoryProbe {
  std::function<int64_t()> used_bytes;
  std::function<void()> release_cached = [] {};
};

// One step of `request` alone, then of two copies in one batch, then (when it is larger) of the
// largest request the executor's limits allow, with `request`'s guidance, each read after a
// release of the cache (so each sample is that step's own peak); with `decode`, the extra memory
// of decoding one request (its latents from the shortest run the model accepts). Engine-thread
// work: call before the engine starts. `request` must be resolved.
absl::StatusOr<StepMemory> MeasureStepMemory(Executor& executor, const GenerationParams& request,
                                             const DeviceMemoryProbe& probe, bool decode);

// Step tokens of the largest request `limits` accept: the largest multiple of the size steps
// within max_width / max_height, max_frames, and CFG's second pass unless the model is distilled
// (fixed timesteps) or caps guidance at 1.
int64_t LargestRequestTokens(const ModelLimits& limits);

// One loaded model as the budget sees it.
struct BudgetModel {
  std::string name;
  Executor* executor = nullptr;  // measured on the calling thread, before the engine starts
  ModelLimits limits;            // what requests get (the server's caps applied)
};

struct ServingBudgetOptions {
  int64_t total_bytes = 0;
  double margin = 0.1;
  bool overlap_decode = false;
  int decode_workers = 1;  // decodes that may run at once beside the steps (limits.workers)
  // Models a hot swap may hold at once beside each active one (1 + keep_previous_checkpoints
  // when checkpoints can be loaded at run time, else 0): each reserves one model's resident share.
  int swap_models = 0;
  int max_batch_cap = 64;
};

// Measures every model (MeasureStepMemory on its default request) and derives each one's budget
// against its own line and its own largest request (a decode measured at the default size is
// scaled by the largest request's pixels). A step runs one model, so each model keeps its own
// token budget (model_token_budgets): a model with cheaper tokens is not held to a dearer one's.
// Requests of every model hold memory between steps (at most max_batch in all), so a model's
// budget leaves room for max_batch − 1 requests of the model with the dearest requests beside its
// own; max_batch is lowered until every model's largest request fits that way.
// Errors as DeriveMemoryBudget's, naming the model.
absl::StatusOr<MemoryBudget> DeriveServingBudget(const std::vector<BudgetModel>& models,
                                                 const DeviceMemoryProbe& probe,
                                                 const ServingBudgetOptions& options);

// auto_budget's result into the scheduler's options: the derived max_batch and token budgets
// replace the configured ones, except that a scheduler.max_batch or scheduler.token_budget the
// operator set (ServerConfig::given) caps them (derive with max_batch_cap = that max_batch).
// Returns what it did, for the log.
std::string ApplyServingBudget(const MemoryBudget& budget, const std::set<std::string>& given,
                               ServerConfig::Scheduler& scheduler);

}  // namespace linvideo::server

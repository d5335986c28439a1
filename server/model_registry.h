#pragma once
// ModelRegistry: named models, each with an active checkpoint (an Executor) and the checkpoints it
// replaced (for Rollback). Loading happens beside the active model (on the caller's thread: the
// Admin handler), then the new one is validated, warmed up and published by swapping a
// shared_ptr<const LoadedModel>. Requests pin the LoadedModel they were admitted with, so a swap
// never disturbs in-flight work, and the flip is atomic between the engine's steps.
// Thread safety: all methods are thread-safe; loads are serialised.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/compute_device.h"
#include "server/executor.h"

namespace linvideo::server {

struct LoadedModel {
  std::string name;
  std::string path;  // as given (relative to the checkpoint root for Admin loads)
  std::string dir;   // the folder it was loaded from (resolved; what a post-training job reads)
  int64_t version = 0;
  absl::Time loaded_at;
  std::shared_ptr<Executor> executor;
  ModelLimits limits;  // the executor's, with the server's caps applied: what requests get
  // How the checkpoint was made: the "linvideo_*" lineage sections of its model_index.json
  // (conversion, distillation, training) as one compact JSON object; "{}" without any.
  std::string lineage_json = "{}";

  // The server's cap on prompt length in characters (UTF-8 code points; limits.max_prompt_chars),
  // checked before the model's own byte limit; 0: none.
  int64_t max_prompt_chars = 0;

  // Fills in this model's defaults and validates (core::params::Resolve, then the sampler's
  // schedule). Any thread.
  absl::StatusOr<GenerationParams> Resolve(const GenerationParams& params) const;
};

struct RegistryOptions {
  std::string checkpoint_root;       // empty: Admin loads are refused (FAILED_PRECONDITION)
  int64_t max_prompt_chars = 0;      // server cap on prompt length in characters; 0: none
  ComputeDevice* compute = nullptr;  // leased for warm-ups; must outlive the registry
  int64_t keep_previous = 1;         // replaced checkpoints kept per model (Rollback's history)
};

class ModelRegistry {
 public:
  ModelRegistry(ExecutorFactory factory, RegistryOptions options)
      : factory_(std::move(factory)), options_(std::move(options)) {}

  // Startup models: any path (operator config). Loads, warms up and activates.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> LoadInitial(const std::string& name,
                                                                 const std::string& dir);
  // Admin: `path` must resolve inside the checkpoint root (PERMISSION_DENIED otherwise). A
  // checkpoint that fails to load, validate or warm up is refused; the active one stays.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Load(const std::string& name,
                                                          const std::string& path);
  // Loads `dir` (any path) and runs the warm-up like a swap would, then drops it: whether a
  // folder would serve. Nothing is activated.
  absl::Status Validate(const std::string& dir);
  // Re-activates the checkpoint active before the current one (FAILED_PRECONDITION if none:
  // only `keep_previous` replaced checkpoints per model are kept). `rolled_back_from`, if given,
  // receives the version that was active.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Rollback(const std::string& name,
                                                              int64_t* rolled_back_from = nullptr);

  // Active model; "" = the default (first loaded). NOT_FOUND lists the names served.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Get(const std::string& name) const;
  std::vector<std::shared_ptr<const LoadedModel>> Active() const;
  // Every checkpoint known (active and history), with `active` flags.
  std::vector<std::pair<std::shared_ptr<const LoadedModel>, bool>> All() const;
  bool ready() const;
  int64_t swaps() const;

 private:
  absl::StatusOr<std::shared_ptr<const LoadedModel>> LoadAndActivate(
      const std::string& name, const std::string& display_path, const std::string& dir);
  // Lets go of checkpoints taken out of the registry (outside mu_) and returns free memory to the
  // system.
  static void Release(std::vector<std::shared_ptr<const LoadedModel>>& dropped);
  struct Entry {
    std::shared_ptr<const LoadedModel> active;
    std::vector<std::shared_ptr<const LoadedModel>> history;  // most recent last, <= keep_previous
    int64_t next_version = 1;
  };
  ExecutorFactory factory_;
  const RegistryOptions options_;
  absl::Mutex load_mu_;  // serialises loads (they are slow and memory-hungry)
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> models_ ABSL_GUARDED_BY(mu_);
  std::string default_ ABSL_GUARDED_BY(mu_);
  int64_t swaps_ ABSL_GUARDED_BY(mu_) = 0;
};

// Resolves `path` (relative to `root` unless absolute) and checks it lies inside `root` after
// following symlinks, and so does every symlink inside it (followed into linked folders).
// PERMISSION_DENIED when something escapes or dangles, NOT_FOUND when `path` does not exist,
// FAILED_PRECONDITION for a folder over 100000 entries or 16 levels deep (a symlink loop).
absl::StatusOr<std::string> ConfinePath(const std::string& root, const std::string& path);

}  // namespace linvideo::server

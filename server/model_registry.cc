#include "server/model_registry.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <filesystem>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/io/json_file.h"
#include "core/sampling/sampler.h"
#include "server/config.h"

namespace linvideo::server {

namespace {
// UTF-8 code points: the bytes that do not continue a sequence (a stray continuation byte counts
// as none; proto3 string fields carry valid UTF-8 only).
int64_t Utf8Chars(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}
}  // namespace

absl::StatusOr<GenerationParams> LoadedModel::Resolve(const GenerationParams& params) const {
  if (max_prompt_chars > 0) {
    for (auto [field, text] : {std::pair{"prompt", &params.prompt},
                               std::pair{"negative_prompt", &params.negative_prompt}}) {
      if (const int64_t n = Utf8Chars(*text); n > max_prompt_chars) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, " is ", n, " characters; this server accepts at most ",
                         max_prompt_chars, " (limits.max_prompt_chars)"));
      }
    }
  }
  absl::StatusOr<GenerationParams> p = core::params::Resolve(params, limits);
  if (!p.ok()) return p;
  // The schedule the request will sample, built now: a combination the limits allow can still
  // have no schedule (the fewstep sampler with many steps and a large shift clamps neighbouring
  // timesteps to the same sigma), and that must be refused here, not after admission.
  if (auto schedule = core::sampling::MakeRequestSchedule(*p, limits); !schedule.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sampler ", core::params::SamplerKindName(*p->sampler), " with steps ", p->steps,
        " and shift ", p->shift, " is not allowed: ", schedule.status().message()));
  }
  return p;
}

absl::StatusOr<std::string> ConfinePath(const std::string& root, const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(root.c_str(), buf) == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint root '", root, "' does not exist"));
  }
  const std::string real_root = buf;
  const std::string joined = absl::StartsWith(path, "/") ? path : root + "/" + path;
  if (realpath(joined.c_str(), buf) == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint path '", path, "' does not exist under the checkpoint root"));
  }
  const std::string real = buf;
  auto inside = [&](const std::string& p) {
    return p == real_root || absl::StartsWith(p, real_root + "/");
  };
  if (!inside(real)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "checkpoint path '", path, "' is outside the checkpoint root; only folders inside ",
        real_root, " may be loaded"));
  }
  // Everything the loader may open must stay inside the root too: a symlink in the folder (or in a
  // folder it links to) that leads outside would read files the operator never published.
  constexpr int kMaxEntries = 100000, kMaxDepth = 16;
  std::error_code ec;
  int entries = 0;
  namespace fs = std::filesystem;
  for (fs::recursive_directory_iterator it(real,
                                           fs::directory_options::follow_directory_symlink |
                                               fs::directory_options::skip_permission_denied,
                                           ec),
       end;
       !ec && it != end; it.increment(ec)) {
    if (++entries > kMaxEntries || it.depth() > kMaxDepth) {
      return absl::FailedPreconditionError(
          absl::StrCat("checkpoint path '", path, "' holds more than ", kMaxEntries,
                       " files or is nested deeper than ", kMaxDepth,
                       " folders (a symlink loop?); a model folder is small and flat"));
    }
    std::error_code lec;
    if (!it->is_symlink(lec)) continue;
    const std::string link = it->path().string();
    const bool resolves = realpath(link.c_str(), buf) != nullptr;
    if (!resolves || !inside(buf)) {
      return absl::PermissionDeniedError(absl::StrCat(
          "checkpoint path '", path, "' holds a symlink ", link.substr(real.size() + 1),
          resolves ? absl::StrCat(" that leads outside the checkpoint root (to ", buf, ")")
                   : std::string(" that leads nowhere"),
          "; only files inside ", real_root, " may be loaded: copy the file in instead"));
    }
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint path '", path, "' cannot be listed: ", ec.message()));
  }
  return real;
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelRegistry::LoadInitial(
    const std::string& name, const std::string& dir) {
  return LoadAndActivate(name, dir, dir);
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelRegistry::Load(const std::string& name,
                                                                       const std::string& path) {
  if (options_.checkpoint_root.empty()) {
    return absl::FailedPreconditionError(
        "LoadCheckpoint needs the server's --checkpoint_root to be set");
  }
  if (absl::Status valid = ValidateModelName(name, "LoadCheckpoint: "); !valid.ok()) return valid;
  absl::StatusOr<std::string> dir = ConfinePath(options_.checkpoint_root, path);
  if (!dir.ok()) return dir.status();
  return LoadAndActivate(name, path, *dir);
}

namespace {

// The lineage sections ("linvideo_conversion", "linvideo_distillation", "linvideo_training", ...)
// of a model folder's model_index.json; the serving section "linvideo" is not lineage.
std::string ReadLineageJson(const std::string& dir) {
  auto index = core::io::ReadJsonFile(dir + "/model_index.json");
  nlohmann::json lineage = nlohmann::json::object();
  if (index.ok() && index->is_object()) {
    for (const auto& [key, value] : index->items()) {
      if (absl::StartsWith(key, "linvideo_")) lineage[key] = value;
    }
  }
  // Replace (not throw on) invalid UTF-8: a proto string must be valid UTF-8.
  return lineage.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelRegistry::LoadAndActivate(
    const std::string& name, const std::string& display_path, const std::string& dir) {
  absl::MutexLock load_lock(&load_mu_);
  // Load beside the active model; nothing is published until it has loaded and run a warm-up.
  absl::StatusOr<std::unique_ptr<Executor>> executor = factory_(dir);
  if (!executor.ok()) {
    return absl::Status(
        executor.status().code() == absl::StatusCode::kNotFound
            ? absl::StatusCode::kNotFound
            : absl::StatusCode::kFailedPrecondition,
        absl::StrCat("checkpoint '", display_path, "' refused: ", executor.status().message()));
  }
  absl::Status warm;
  {
    auto lease = ComputeDevice::Acquire(options_.compute);
    warm = (*executor)->WarmUp();
  }
  if (!warm.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint '", display_path, "' failed its warm-up: ", warm.message()));
  }
  auto model = std::make_shared<LoadedModel>();
  model->name = name;
  model->path = display_path;
  model->dir = dir;
  model->loaded_at = absl::Now();
  model->executor = std::move(*executor);
  model->limits = model->executor->limits();
  model->lineage_json = ReadLineageJson(dir);
  model->max_prompt_chars = options_.max_prompt_chars;
  // Dropped checkpoints are released after the lock: freeing a model's weights takes a while, and
  // requests that pinned it keep it until they finish.
  std::vector<std::shared_ptr<const LoadedModel>> dropped;
  {
    absl::MutexLock lock(&mu_);
    Entry& e = models_[name];
    model->version = e.next_version++;
    if (e.active != nullptr) {
      e.history.push_back(e.active);
      ++swaps_;
    }
    while (static_cast<int64_t>(e.history.size()) > std::max<int64_t>(options_.keep_previous, 0)) {
      dropped.push_back(std::move(e.history.front()));
      e.history.erase(e.history.begin());
    }
    e.active = model;
    if (default_.empty()) default_ = name;
  }
  Release(dropped);
  return std::shared_ptr<const LoadedModel>(model);
}

void ModelRegistry::Release(std::vector<std::shared_ptr<const LoadedModel>>& dropped) {
  if (dropped.empty()) return;
  dropped.clear();  // frees each checkpoint nothing else pins
#if defined(__GLIBC__)
  // A model's weights and warm-up buffers are freed across several malloc arenas (loads run on
  // gRPC threads); hand the free pages back so resident memory follows the loaded checkpoints
  // instead of the high-water mark (tests/e2e/real_model_e2e_test: 20 swaps).
  malloc_trim(0);
#endif
}

absl::Status ModelRegistry::Validate(const std::string& dir) {
  absl::MutexLock load_lock(&load_mu_);
  absl::StatusOr<std::unique_ptr<Executor>> executor = factory_(dir);
  if (!executor.ok()) return executor.status();
  auto lease = ComputeDevice::Acquire(options_.compute);
  return (*executor)->WarmUp();
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelRegistry::Rollback(
    const std::string& name, int64_t* rolled_back_from) {
  std::vector<std::shared_ptr<const LoadedModel>> dropped;
  std::shared_ptr<const LoadedModel> previous;
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) {
      return absl::NotFoundError(absl::StrCat("no model named '", name, "'"));
    }
    Entry& e = it->second;
    if (e.history.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("model '", name, "' has no previous checkpoint to roll back to"));
    }
    previous = e.history.back();
    e.history.pop_back();
    if (rolled_back_from != nullptr) *rolled_back_from = e.active->version;
    // The rolled-back-from checkpoint is dropped; in-flight requests still hold it.
    dropped.push_back(std::move(e.active));
    e.active = previous;
    ++swaps_;
  }
  Release(dropped);
  return previous;
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelRegistry::Get(
    const std::string& name) const {
  absl::MutexLock lock(&mu_);
  const std::string& key = name.empty() ? default_ : name;
  auto it = models_.find(key);
  if (it == models_.end()) {
    std::vector<std::string> names;
    for (const auto& [n, e] : models_) names.push_back(n);
    return absl::NotFoundError(
        absl::StrCat("unknown model '", name, "'; served models: ", absl::StrJoin(names, ", ")));
  }
  return it->second.active;
}

std::vector<std::shared_ptr<const LoadedModel>> ModelRegistry::Active() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<const LoadedModel>> out;
  if (auto it = models_.find(default_); it != models_.end()) out.push_back(it->second.active);
  for (const auto& [n, e] : models_) {
    if (n != default_) out.push_back(e.active);
  }
  return out;
}

std::vector<std::pair<std::shared_ptr<const LoadedModel>, bool>> ModelRegistry::All() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<std::shared_ptr<const LoadedModel>, bool>> out;
  for (const auto& [n, e] : models_) {
    for (const auto& h : e.history) out.emplace_back(h, false);
    out.emplace_back(e.active, true);
  }
  return out;
}

bool ModelRegistry::ready() const {
  absl::MutexLock lock(&mu_);
  return !models_.empty();
}

int64_t ModelRegistry::swaps() const {
  absl::MutexLock lock(&mu_);
  return swaps_;
}

}  // namespace linvideo::server

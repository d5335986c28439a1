// JobManager's publish stage (its own thread once the job's last process ended): the export
// checked against the spec, the quality gate, a version folder claimed and the export moved in,
// then the optional swap. Resumable from what job.json records.
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "server/job_manager.h"
#include "server/job_manager_internal.h"
#include "server/job_spec.h"
#include "server/job_stages.h"
#include "server/log.h"

namespace linvideo::server {

namespace fs = std::filesystem;

std::string JobManager::OutputName(const JobSnapshot& job) const {
  if (!job.spec.output_name.empty()) return job.spec.output_name;
  std::string base =
      job.base_model.empty() ? fs::path(job.base_dir).filename().string() : job.base_model;
  for (char& ch : base) {
    if (!IsValidName(std::string(1, ch))) ch = '_';
  }
  if (job.spec.kind == JobKind::kDistill) {  // e.g. default-linvideo-4step
    const size_t steps = job.spec.distill.timesteps.empty() ? 4 : job.spec.distill.timesteps.size();
    return absl::StrCat(base.empty() ? std::string("model") : base.substr(0, 48), "-", steps,
                        "step");
  }
  return (base.empty() ? std::string("model") : base.substr(0, 48)) + "-linvideo";
}

void JobManager::Publish(const std::string& id) {
  JobSnapshot job;
  {
    absl::MutexLock lock(&mu_);
    job = jobs_.at(id)->snap;
  }
  const fs::path dir = Dir(id);
  const fs::path output = dir / "output";
  auto end = [&](JobState state, const std::string& error) {
    absl::MutexLock lock(&mu_);
    Job& j = *jobs_.at(id);
    j.publishing = false;
    if (state == JobState::kSucceeded) j.snap.checkpoint_version = job.checkpoint_version;
    Finish(j, state, error);
  };
  auto cancelled = [&] {
    absl::MutexLock lock(&mu_);
    return jobs_.at(id)->cancel_requested;
  };
  // A resumed publish (the server stopped during it) goes on from what job.json recorded: once
  // a version is claimed (output_path), only the move and the swap are left.
  if (!job.output_path.empty() && !IsValidName(job.output_path)) {
    return end(JobState::kFailed,
               absl::StrCat("job.json names an invalid output folder '", job.output_path, "'"));
  }
  if (job.output_path.empty()) {
    // 1. The export is what the job asked for: a conversion has exactly K linear layers and no
    //    hybrid one left; a distillation keeps the base's layer kinds and declares its sampler.
    absl::Status checked = job.spec.kind == JobKind::kDistill
                               ? CheckDistillOutput(output.string(), job.base_dir)
                               : CheckConvertOutput(output.string(), job.spec.convert);
    if (!checked.ok()) return end(JobState::kFailed, std::string(checked.message()));
    // 2. The quality gate: the output's scores against the base's, same prompts and seeds.
    if (job.spec.gate.enabled()) {
      auto base = GateScores((dir / "gate" / "base" / "eval.json").string());
      auto out = GateScores((dir / "gate" / "output" / "eval.json").string());
      if (!base.ok() || !out.ok()) {
        return end(JobState::kFailed,
                   absl::StrCat("gate: ", (base.ok() ? out : base).status().message()));
      }
      std::vector<std::string> misses;
      for (const auto& [name, max_drop] : job.spec.gate.max_drop) {
        const double drop = base->at(name) - out->at(name);
        if (drop > max_drop + 1e-12) {
          misses.push_back(
              absl::StrFormat("%s dropped %.4f (base %.4f -> output %.4f), allowed %.4f", name,
                              drop, base->at(name), out->at(name), max_drop));
        }
      }
      const double psnr = out->count("psnr") ? out->at("psnr") : 0.0;
      if (job.spec.gate.min_psnr > 0 && psnr < job.spec.gate.min_psnr) {
        misses.push_back(absl::StrFormat("PSNR against the base's videos %.2f dB, required %.2f dB",
                                         psnr, job.spec.gate.min_psnr));
      }
      {
        absl::MutexLock lock(&mu_);
        Job& j = *jobs_.at(id);
        j.snap.base_scores = *base;
        j.snap.output_scores = *out;
        Changed(j);
      }
      if (!misses.empty()) {
        return end(JobState::kGateFailed,
                   absl::StrCat("quality gate missed: ", absl::StrJoin(misses, "; "),
                                ". Nothing was published or swapped; the output stays in ",
                                output.string()));
      }
    }
    // 3. It loads and generates (a swap does this itself, after publishing).
    if (!job.spec.activate && hooks_.validate) {
      if (absl::Status s = hooks_.validate(output.string()); !s.ok()) {
        return end(JobState::kFailed, absl::StrCat("the output does not serve: ", s.message(),
                                                   "; it stays in ", output.string()));
      }
    }
    if (cancelled()) return end(JobState::kCancelled, "cancelled by CancelJob before publishing");
    // 4. Claim <name>-v<N> by mkdir, so nothing is ever overwritten, and record it before moving.
    const std::string name = OutputName(job);
    for (int v = 1; v < 100000 && job.output_path.empty(); ++v) {
      const fs::path target = fs::path(options_.checkpoint_root) / absl::StrCat(name, "-v", v);
      if (mkdir(target.c_str(), 0755) != 0) {
        if (errno == EEXIST) continue;
        return end(JobState::kFailed,
                   absl::StrCat("cannot create ", target.string(), ": ", strerror(errno)));
      }
      job.output_path = target.filename().string();
    }
    if (job.output_path.empty()) {
      return end(JobState::kFailed, absl::StrCat("no free version of '", name, "' left under ",
                                                 options_.checkpoint_root));
    }
    absl::MutexLock lock(&mu_);
    Job& j = *jobs_.at(id);
    j.snap.output_path = job.output_path;
    Changed(j);
  }
  {
    // 5. Move the export into the claimed folder (still there: the move has not finished).
    const fs::path target = fs::path(options_.checkpoint_root) / job.output_path;
    std::error_code ec;
    if (fs::exists(output, ec)) {
      // Empty, or holding a copy cut short: clear what is inside but keep the folder itself,
      // which is this job's claim on the version (rename onto an empty folder replaces it).
      for (fs::directory_iterator it(target, ec), end_it; !ec && it != end_it; it.increment(ec)) {
        std::error_code rm;
        fs::remove_all(it->path(), rm);
      }
      ec.clear();
      fs::rename(output, target, ec);
      if (ec) {  // another file system: copy, then drop the job's copy
        ec.clear();
        fs::copy(output, target, fs::copy_options::recursive, ec);
        if (ec) {
          return end(JobState::kFailed,
                     absl::StrCat("publishing to ", target.string(), ": ", ec.message()));
        }
        fs::remove_all(output, ec);
      }
      LV_LOG(INFO) << "job=" << id << " published " << job.output_path;
    } else if (!fs::exists(target / "model_index.json", ec)) {
      return end(JobState::kFailed,
                 absl::StrCat("neither the export ", output.string(), " nor the published ",
                              target.string(), " holds a model (removed by hand?)"));
    }
  }
  // 6. The swap, through Admin.LoadCheckpoint's path.
  if (job.spec.activate) {
    if (cancelled()) return end(JobState::kCancelled, "cancelled by CancelJob before the swap");
    const std::string model = job.spec.activate_as.empty() ? job.base_model : job.spec.activate_as;
    absl::StatusOr<int64_t> version = hooks_.activate(model, job.output_path);
    if (metrics_ != nullptr) metrics_->CountJobSwap(model, version.ok());
    if (!version.ok()) {
      return end(JobState::kFailed,
                 absl::StrCat("published as ", job.output_path, ", but activating it as '", model,
                              "' failed: ", version.status().message(),
                              " (the previous checkpoint still serves)"));
    }
    job.checkpoint_version = *version;
    LV_LOG(INFO) << "job=" << id << " activated model=" << model << " version=" << *version;
  }
  end(JobState::kSucceeded, "");
}

}  // namespace linvideo::server

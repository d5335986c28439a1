#include "server/job_spec.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace linvideo::server {
namespace {

using json = nlohmann::json;

constexpr const char* kStateNames[] = {"queued", "running",   "validating", "succeeded",
                                       "failed", "cancelled", "gate_failed"};

absl::Status Bad(const std::string& what) { return absl::InvalidArgumentError(what); }

// lo <= v <= hi, false for NaN (a NaN passes every `v < lo || v > hi` test, and would reach
// job.json as null and the tools as "nan").
bool Within(double v, double lo, double hi) { return v >= lo && v <= hi; }

// A JSON value of the wrong kind for a field (thrown inside the readers, caught with
// json::exception): a number that is not an integer or does not fit the field's type would
// otherwise go through a float-to-int conversion, which is undefined (found by job_spec_fuzz).
struct FieldError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename T>
struct IsVector : std::false_type {};
template <typename T, typename A>
struct IsVector<std::vector<T, A>> : std::true_type {};

template <typename T>
void CheckFits(const json& v, const char* key) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    bool fits = false;
    if (v.is_number_unsigned()) {
      fits = v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max());
    } else if (v.is_number_integer()) {
      const int64_t x = v.get<int64_t>();
      fits = x >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
             (x <= 0 ||
              static_cast<uint64_t>(x) <= static_cast<uint64_t>(std::numeric_limits<T>::max()));
    }
    if (!fits) {
      throw FieldError(
          absl::StrCat("field '", key, "' must be an integer that fits its type, got ", v.dump()));
    }
  } else if constexpr (IsVector<T>::value) {
    if (v.is_array()) {
      for (const json& e : v) CheckFits<typename T::value_type>(e, key);
    }
  }
  // Strings, booleans, doubles and maps of doubles: json::type_error covers the wrong kinds.
}

template <typename T>
void Get(const json& j, const char* key, T* out) {
  if (auto it = j.find(key); it != j.end() && !it->is_null()) {
    CheckFits<T>(*it, key);
    *out = it->get<T>();
  }
}

}  // namespace

const char* JobStateName(JobState s) { return kStateNames[static_cast<int>(s)]; }

bool IsTerminal(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled ||
         s == JobState::kGateFailed;
}

const char* JobKindName(JobKind k) { return k == JobKind::kDistill ? "distill" : "convert"; }

const std::vector<JobKind>& AllJobKinds() {
  static const std::vector<JobKind> kinds = {JobKind::kConvert, JobKind::kDistill};
  return kinds;
}

const std::vector<std::string>& GateScoreNames() {
  static const std::vector<std::string> names = {"adherence", "all_correct", "consistency",
                                                 "quality"};
  return names;
}

bool IsValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

absl::StatusOr<std::vector<int>> ParseCpuList(const std::string& list) {
  std::vector<int> cpus;
  auto bad = [&] {
    return Bad(absl::StrCat("CPU list '", list, "': expected indices and ranges like 1 or 0-3,6"));
  };
  for (absl::string_view part : absl::StrSplit(list, ',')) {
    std::vector<std::string> ends = absl::StrSplit(part, '-');
    int lo = 0, hi = 0;
    if (ends.size() == 1) {
      if (!absl::SimpleAtoi(ends[0], &lo)) return bad();
      hi = lo;
    } else if (ends.size() == 2) {
      if (!absl::SimpleAtoi(ends[0], &lo) || !absl::SimpleAtoi(ends[1], &hi)) return bad();
    } else {
      return bad();
    }
    if (lo < 0 || hi < lo || hi > 4095) return bad();
    for (int c = lo; c <= hi; ++c) cpus.push_back(c);
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

absl::Status ValidateConvert(const ConvertJobOptions& c);
absl::Status ValidateDistill(const DistillJobOptions& d);
absl::Status ValidateGate(const QualityGateSpec& g);

absl::Status ValidateJobSpec(const JobSpec& s) {
  if (!s.job_id.empty() && !IsValidName(s.job_id)) {
    return Bad(absl::StrCat("job_id '", s.job_id,
                            "' is not allowed: use 1-64 characters from A-Z a-z 0-9 _ -"));
  }
  if (s.base.empty()) {
    return Bad(
        "base is empty: name a served model (ListModels) or a folder under the checkpoint root");
  }
  if (!s.output_name.empty() && !IsValidName(s.output_name)) {
    return Bad(absl::StrCat("output_name '", s.output_name,
                            "' is not allowed: it names a folder directly under the checkpoint "
                            "root, 1-64 characters from A-Z a-z 0-9 _ - (no '/' or '..')"));
  }
  if (!s.activate_as.empty() && !IsValidName(s.activate_as)) {
    return Bad(absl::StrCat("activate_as '", s.activate_as,
                            "' is not a model name: use 1-64 characters from A-Z a-z 0-9 _ -"));
  }
  absl::Status kind =
      s.kind == JobKind::kDistill ? ValidateDistill(s.distill) : ValidateConvert(s.convert);
  if (!kind.ok()) return kind;
  return ValidateGate(s.gate);
}

absl::Status ValidateConvert(const ConvertJobOptions& c) {
  if (c.linear_layers < 1) {
    return Bad(absl::StrCat("convert.linear_layers=", c.linear_layers,
                            ": the number of layers to make linear must be >= 1"));
  }
  struct Count {
    const char* name;
    int64_t value;
  };
  for (const Count& n :
       {Count{"steps", c.steps}, Count{"batch", c.batch}, Count{"trajectories", c.trajectories},
        Count{"trajectory_steps", c.trajectory_steps},
        Count{"checkpoint_every", c.checkpoint_every}}) {
    if (n.value < 0) {
      return Bad(absl::StrCat("convert.", n.name, "=", n.value,
                              ": must be >= 0 (0: the default of linvideo-train)"));
    }
  }
  if (!Within(c.lr, 0, 1)) {
    return Bad(absl::StrCat("convert.lr=", c.lr, ": allowed 0 (default) or (0, 1]"));
  }
  if (!c.objective.empty() && c.objective != "adm" && c.objective != "mse") {
    return Bad(absl::StrCat("convert.objective '", c.objective, "': allowed adm, mse"));
  }
  if (!c.select.empty() && c.select != "auto" && c.select != "heuristic" &&
      c.select.rfind("layers:", 0) != 0) {
    return Bad(absl::StrCat("convert.select '", c.select,
                            "': allowed auto, heuristic or layers:I,J,... (layer indices)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateDistill(const DistillJobOptions& d) {
  struct Count {
    const char* name;
    int64_t value;
  };
  for (const Count& n :
       {Count{"steps", d.steps}, Count{"batch", d.batch}, Count{"fake_updates", d.fake_updates},
        Count{"trajectories", d.trajectories}, Count{"trajectory_steps", d.trajectory_steps},
        Count{"checkpoint_every", d.checkpoint_every}}) {
    if (n.value < 0) {
      return Bad(absl::StrCat("distill.", n.name, "=", n.value,
                              ": must be >= 0 (0: the default of linvideo-train)"));
    }
  }
  if (d.fake_updates > 100) {
    return Bad(
        absl::StrCat("distill.fake_updates=", d.fake_updates, ": allowed 0 (default) .. 100"));
  }
  for (auto [name, v] : {std::pair("lr", d.lr), std::pair("fake_lr", d.fake_lr)}) {
    if (!Within(v, 0, 1))
      return Bad(absl::StrCat("distill.", name, "=", v, ": allowed 0 (default) or (0, 1]"));
  }
  if (!Within(d.real_guidance, 0, 20)) {
    return Bad(
        absl::StrCat("distill.real_guidance=", d.real_guidance, ": allowed 0 (default: 3) .. 20"));
  }
  if (d.timesteps.size() > 16) {
    return Bad(absl::StrCat("distill.timesteps has ", d.timesteps.size(), " entries; at most 16"));
  }
  for (size_t i = 0; i < d.timesteps.size(); ++i) {
    if (d.timesteps[i] < 1 || d.timesteps[i] > 1000 ||
        (i > 0 && d.timesteps[i] >= d.timesteps[i - 1])) {
      return Bad(absl::StrCat("distill.timesteps [", absl::StrJoin(d.timesteps, ", "),
                              "]: use strictly decreasing integers in [1, 1000] (e.g. 1000, 750, "
                              "500, 250; empty: that list)"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateGate(const QualityGateSpec& g) {
  if (g.enabled()) {
    if (g.prompts != "seen" && g.prompts != "heldout" && g.prompts != "all") {
      return Bad(absl::StrCat("gate.prompts '", g.prompts, "': allowed seen, heldout, all"));
    }
    if (g.seeds < 0 || g.seeds > 10) {
      return Bad(absl::StrCat("gate.seeds=", g.seeds, ": allowed 0..10 (0: 1 seed)"));
    }
    if (g.steps < 0) return Bad(absl::StrCat("gate.steps=", g.steps, ": must be >= 0"));
    for (const auto& [name, drop] : g.max_drop) {
      const auto& names = GateScoreNames();
      if (std::find(names.begin(), names.end(), name) == names.end()) {
        return Bad(absl::StrCat("gate.max_drop: unknown score '", name,
                                "'; allowed: ", absl::StrJoin(names, ", ")));
      }
      if (!Within(drop, -1, 1)) {
        return Bad(absl::StrCat("gate.max_drop[", name, "]=", drop,
                                ": allowed -1..1 (scores are fractions)"));
      }
    }
    if (!Within(g.min_psnr, 0, 1000)) {
      return Bad(
          absl::StrCat("gate.min_psnr=", g.min_psnr, ": allowed 0 (not checked) .. 1000 dB"));
    }
  } else if (!g.max_drop.empty() || g.min_psnr != 0) {
    return Bad("gate: set gate.prompts (seen, heldout or all) to evaluate max_drop / min_psnr");
  }
  return absl::OkStatus();
}

json SpecToJson(const JobSpec& s) {
  const ConvertJobOptions& c = s.convert;
  const DistillJobOptions& d = s.distill;
  return {{"job_id", s.job_id},
          {"base", s.base},
          {"kind", JobKindName(s.kind)},
          {"convert",
           {{"linear_layers", c.linear_layers},
            {"select", c.select},
            {"pinned", c.pinned},
            {"objective", c.objective},
            {"steps", c.steps},
            {"lr", c.lr},
            {"seed", c.seed},
            {"batch", c.batch},
            {"trajectories", c.trajectories},
            {"trajectory_steps", c.trajectory_steps},
            {"checkpoint_every", c.checkpoint_every}}},
          {"distill",
           {{"timesteps", d.timesteps},
            {"steps", d.steps},
            {"fake_updates", d.fake_updates},
            {"real_guidance", d.real_guidance},
            {"lr", d.lr},
            {"fake_lr", d.fake_lr},
            {"seed", d.seed},
            {"batch", d.batch},
            {"trajectories", d.trajectories},
            {"trajectory_steps", d.trajectory_steps},
            {"checkpoint_every", d.checkpoint_every},
            {"real", d.real}}},
          {"output_name", s.output_name},
          {"activate", s.activate},
          {"activate_as", s.activate_as},
          {"gate",
           {{"prompts", s.gate.prompts},
            {"seeds", s.gate.seeds},
            {"steps", s.gate.steps},
            {"max_drop", s.gate.max_drop},
            {"min_psnr", s.gate.min_psnr}}}};
}

absl::StatusOr<JobSpec> SpecFromJson(const json& j) {
  try {
    JobSpec s;
    Get(j, "job_id", &s.job_id);
    Get(j, "base", &s.base);
    std::string kind = "convert";
    Get(j, "kind", &kind);
    if (kind == "distill") {
      s.kind = JobKind::kDistill;
    } else if (kind != "convert") {
      return Bad(absl::StrCat("unknown job kind '", kind, "'; allowed: convert, distill"));
    }
    if (auto it = j.find("distill"); it != j.end()) {
      DistillJobOptions& d = s.distill;
      Get(*it, "timesteps", &d.timesteps);
      Get(*it, "steps", &d.steps);
      Get(*it, "fake_updates", &d.fake_updates);
      Get(*it, "real_guidance", &d.real_guidance);
      Get(*it, "lr", &d.lr);
      Get(*it, "fake_lr", &d.fake_lr);
      Get(*it, "seed", &d.seed);
      Get(*it, "batch", &d.batch);
      Get(*it, "trajectories", &d.trajectories);
      Get(*it, "trajectory_steps", &d.trajectory_steps);
      Get(*it, "checkpoint_every", &d.checkpoint_every);
      Get(*it, "real", &d.real);
    }
    if (auto it = j.find("convert"); it != j.end()) {
      ConvertJobOptions& c = s.convert;
      Get(*it, "linear_layers", &c.linear_layers);
      Get(*it, "select", &c.select);
      Get(*it, "pinned", &c.pinned);
      Get(*it, "objective", &c.objective);
      Get(*it, "steps", &c.steps);
      Get(*it, "lr", &c.lr);
      Get(*it, "seed", &c.seed);
      Get(*it, "batch", &c.batch);
      Get(*it, "trajectories", &c.trajectories);
      Get(*it, "trajectory_steps", &c.trajectory_steps);
      Get(*it, "checkpoint_every", &c.checkpoint_every);
    }
    Get(j, "output_name", &s.output_name);
    Get(j, "activate", &s.activate);
    Get(j, "activate_as", &s.activate_as);
    if (auto it = j.find("gate"); it != j.end()) {
      Get(*it, "prompts", &s.gate.prompts);
      Get(*it, "seeds", &s.gate.seeds);
      Get(*it, "steps", &s.gate.steps);
      Get(*it, "max_drop", &s.gate.max_drop);
      Get(*it, "min_psnr", &s.gate.min_psnr);
    }
    return s;
  } catch (const json::exception& e) {
    return Bad(absl::StrCat("job spec JSON: ", e.what()));
  } catch (const FieldError& e) {
    return Bad(absl::StrCat("job spec JSON: ", e.what()));
  }
}

json SnapshotToJson(const JobSnapshot& job) {
  const JobProgress& p = job.progress;
  return {{"id", job.id},
          {"spec", SpecToJson(job.spec)},
          {"state", JobStateName(job.state)},
          {"progress",
           {{"stage", p.stage},
            {"step", p.step},
            {"total", p.total},
            {"fraction", p.fraction},
            {"eta_s", p.eta_s},
            {"losses", p.losses},
            {"gate_layers", p.gate_layers},
            {"r", p.r}}},
          {"error", job.error},
          {"attempts", job.attempts},
          {"stage_index", job.stage_index},
          {"base_dir", job.base_dir},
          {"base_model", job.base_model},
          {"real_dir", job.real_dir},
          {"output_path", job.output_path},
          {"checkpoint_version", job.checkpoint_version},
          {"base_scores", job.base_scores},
          {"output_scores", job.output_scores},
          {"created_ms", job.created_ms},
          {"started_ms", job.started_ms},
          {"finished_ms", job.finished_ms},
          {"disk_bytes", job.disk_bytes}};
}

absl::StatusOr<JobSnapshot> SnapshotFromJson(const json& j) {
  try {
    JobSnapshot job;
    Get(j, "id", &job.id);
    auto spec = SpecFromJson(j.at("spec"));
    if (!spec.ok()) return spec.status();
    job.spec = *spec;
    const std::string state = j.at("state").get<std::string>();
    bool known = false;
    for (int i = 0; i < 7; ++i) {
      if (state == kStateNames[i]) job.state = static_cast<JobState>(i), known = true;
    }
    if (!known) return Bad(absl::StrCat("unknown job state '", state, "'"));
    if (auto it = j.find("progress"); it != j.end()) {
      JobProgress& p = job.progress;
      Get(*it, "stage", &p.stage);
      Get(*it, "step", &p.step);
      Get(*it, "total", &p.total);
      Get(*it, "fraction", &p.fraction);
      Get(*it, "eta_s", &p.eta_s);
      Get(*it, "losses", &p.losses);
      Get(*it, "gate_layers", &p.gate_layers);
      Get(*it, "r", &p.r);
    }
    Get(j, "error", &job.error);
    Get(j, "attempts", &job.attempts);
    Get(j, "stage_index", &job.stage_index);
    Get(j, "base_dir", &job.base_dir);
    Get(j, "base_model", &job.base_model);
    Get(j, "real_dir", &job.real_dir);
    Get(j, "output_path", &job.output_path);
    Get(j, "checkpoint_version", &job.checkpoint_version);
    Get(j, "base_scores", &job.base_scores);
    Get(j, "output_scores", &job.output_scores);
    Get(j, "created_ms", &job.created_ms);
    Get(j, "started_ms", &job.started_ms);
    Get(j, "finished_ms", &job.finished_ms);
    Get(j, "disk_bytes", &job.disk_bytes);
    return job;
  } catch (const json::exception& e) {
    return Bad(absl::StrCat("job.json: ", e.what()));
  } catch (const FieldError& e) {
    return Bad(absl::StrCat("job.json: ", e.what()));
  }
}

}  // namespace linvideo::server

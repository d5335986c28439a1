#include "core/train/run_options.h"

#include <set>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace linvideo::core::train {
namespace {

// A value as the flag would be written: strings unquoted, absent as "(unset)".
std::string Show(const nlohmann::json& v) {
  if (v.is_null()) return "(unset)";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

}  // namespace

absl::StatusOr<ResumedOptions> CheckResumedOptions(const nlohmann::json& run_record,
                                                   const nlohmann::json& options, int64_t step,
                                                   bool allow_changes,
                                                   const std::string& work_dir) {
  if (!options.is_object()) {
    return absl::InvalidArgumentError("run options must be a JSON object keyed by flag name");
  }
  ResumedOptions out;
  out.options = options;
  out.changes = nlohmann::json::array();
  if (step == 0) return out;  // a fresh run: nothing carried over
  const bool has_record = run_record.is_object();
  if (has_record && run_record.contains("option_changes") &&
      run_record["option_changes"].is_array()) {
    out.changes = run_record["option_changes"];
  }
  if (!has_record || !run_record.contains("options") || !run_record["options"].is_object()) {
    out.note = absl::StrCat("resumed at step ", step,
                            " from a checkpoint whose options were not recorded (an older "
                            "version made it): recording this command's");
    return out;
  }
  const nlohmann::json& recorded = run_record["options"];
  std::set<std::string> keys;
  for (auto it = recorded.begin(); it != recorded.end(); ++it) keys.insert(it.key());
  for (auto it = options.begin(); it != options.end(); ++it) keys.insert(it.key());
  nlohmann::json changed = nlohmann::json::object();
  std::vector<std::string> was, now;
  for (const std::string& key : keys) {
    const nlohmann::json a = recorded.contains(key) ? recorded[key] : nlohmann::json();
    const nlohmann::json b = options.contains(key) ? options[key] : nlohmann::json();
    if (a == b) continue;
    changed[key] = {{"from", a}, {"to", b}};
    was.push_back(absl::StrCat("--", key, " ", Show(a)));
    now.push_back(absl::StrCat("--", key, " ", Show(b)));
  }
  if (changed.empty()) return out;
  if (!allow_changes) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--work ", work_dir, " holds a run checkpointed at step ", step, " with ",
        absl::StrJoin(was, ", "), "; this command asks for ", absl::StrJoin(now, ", "),
        ". Rerun with the recorded values to resume, use a new --work to start over, or pass "
        "--allow-option-changes to continue with the new values (the change and its step are "
        "recorded in run.json and the exported lineage)"));
  }
  out.changes.push_back({{"step", step}, {"changed", changed}});
  out.note = absl::StrCat("resumed at step ", step,
                          " with changed options (allowed): ", absl::StrJoin(was, ", "), " -> ",
                          absl::StrJoin(now, ", "));
  return out;
}

}  // namespace linvideo::core::train

#pragma once
// The options that define a resumable training run, kept in its work folder's run.json: recorded
// when the run first checkpoints and compared on every resume, so that a rerun with, say, another
// learning rate cannot silently continue a checkpoint made with the first one and export a
// lineage that names only the second. A deliberate change is allowed (the tools'
// --allow-option-changes) and then recorded with the step it took effect at.
//
// Options are a flat JSON object keyed by the tool's flag names without "--" (so messages can
// name the flag); values are numbers, strings, booleans or arrays. Only what changes the trained
// weights belongs there (not the step count where the schedule does not depend on it, the log or
// checkpoint cadence, the thread count or the output folder).

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"

namespace linvideo::core::train {

struct ResumedOptions {
  nlohmann::json options;  // what run.json holds under "options" from now on
  // run.json's "option_changes": [{"step": N, "changed": {flag: {from, to}}}]
  nlohmann::json changes;
  std::string note;  // a line for the run's log when options were adopted or changed
};

// `run_record`: run.json's contents (null or {} when there is none); `options`: this command's;
// `step`: the step the checkpoint resumes at (0: a fresh run). A resumed run whose recorded options
// differ gets FAILED_PRECONDITION naming every differing flag with both values, unless
// `allow_changes`; a checkpoint from a version that recorded none adopts these.
absl::StatusOr<ResumedOptions> CheckResumedOptions(const nlohmann::json& run_record,
                                                   const nlohmann::json& options, int64_t step,
                                                   bool allow_changes, const std::string& work_dir);

}  // namespace linvideo::core::train

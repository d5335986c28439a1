#include "core/pipeline/model_index.h"

#include <cmath>
#include <cstdint>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"

namespace linvideo::core::pipeline {
namespace {

// Each field is optional; a present one must have the right type and lie in range: the values
// come from a file anyone may hand to Admin's LoadCheckpoint.
class Section {
 public:
  Section(const nlohmann::json& j, const std::string& where) : j_(j), where_(where) {}

  absl::Status Int(const char* key, int64_t lo, int64_t hi, int64_t& field) const {
    auto it = j_.find(key);
    if (it == j_.end()) return absl::OkStatus();
    // is_number_integer: 128 is one, 128.0 and 1e300 are not (no float-to-int conversion).
    if (!it->is_number_integer() ||
        (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(hi)) ||
        it->get<int64_t>() < lo || it->get<int64_t>() > hi) {
      return absl::InvalidArgumentError(absl::StrCat(where_, ": \"linvideo.", key, "\" is ",
                                                     it->dump(), "; allowed an integer in [", lo,
                                                     ", ", hi, "]"));
    }
    field = it->get<int64_t>();
    return absl::OkStatus();
  }

  absl::Status Double(const char* key, double lo, double hi, double& field) const {
    auto it = j_.find(key);
    if (it == j_.end()) return absl::OkStatus();
    const double v = it->is_number() ? it->get<double>() : std::nan("");
    if (!(v >= lo && v <= hi)) {  // also refuses NaN and non-numbers
      return absl::InvalidArgumentError(absl::StrCat(where_, ": \"linvideo.", key, "\" is ",
                                                     it->dump(), "; allowed a number in [", lo,
                                                     ", ", hi, "]"));
    }
    field = v;
    return absl::OkStatus();
  }

 private:
  const nlohmann::json& j_;
  const std::string& where_;
};

}  // namespace

absl::Status ApplyServingSection(const nlohmann::json& index, const std::string& where,
                                 params::ModelLimits& limits) {
  if (!index.is_object()) return absl::InvalidArgumentError(where + ": not a JSON object");
  auto section = index.find("linvideo");
  if (section == index.end()) return absl::OkStatus();
  const nlohmann::json& j = *section;
  if (!j.is_object()) {
    return absl::InvalidArgumentError(where + ": \"linvideo\" must be an object");
  }
  // Work on a copy: a section refused half way leaves `limits` as it was.
  params::ModelLimits l = limits;
  const Section s(j, where);
  constexpr int64_t kMaxSide = 16384, kMaxFrames = 4097, kMaxSteps = 1000;
  for (absl::Status st : {
           s.Int("max_width", l.min_size, kMaxSide, l.max_width),
           s.Int("max_height", l.min_size, kMaxSide, l.max_height),
           s.Int("max_frames", 1, kMaxFrames, l.max_frames),
           s.Int("max_steps", 1, kMaxSteps, l.max_steps),
           s.Int("default_width", l.min_size, kMaxSide, l.default_width),
           s.Int("default_height", l.min_size, kMaxSide, l.default_height),
           s.Int("default_frames", 1, kMaxFrames, l.default_frames),
           s.Int("default_steps", 1, kMaxSteps, l.default_steps),
           s.Double("default_guidance", 0, l.max_guidance, l.default_guidance),
           s.Double("default_shift", 0, l.max_shift, l.default_shift),
       }) {
    if (!st.ok()) return st;
  }
  for (auto [name, value, max] : {std::tuple{"width", l.default_width, l.max_width},
                                  std::tuple{"height", l.default_height, l.max_height},
                                  std::tuple{"frames", l.default_frames, l.max_frames},
                                  std::tuple{"steps", l.default_steps, l.max_steps}}) {
    if (value > max) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": \"linvideo.default_", name, "\" ",
                                                     value, " is above \"linvideo.max_", name,
                                                     "\" ", max));
    }
  }
  std::string sampler;
  std::vector<int64_t> timesteps;
  if (auto it = j.find("sampler"); it != j.end()) {
    if (!it->is_string()) {
      return absl::InvalidArgumentError(
          where + ": \"linvideo.sampler\" must be a sampler name (unipc, euler, fewstep)");
    }
    sampler = it->get<std::string>();
  }
  if (auto it = j.find("timesteps"); it != j.end()) {
    bool ok = it->is_array() && it->size() <= static_cast<size_t>(kMaxSteps);
    for (const auto& v : *it) {
      // Integers only (no float-to-int conversion); the range check is DeclareSampler's.
      ok = ok && v.is_number_integer() &&
           !(v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX));
      if (ok) timesteps.push_back(v.get<int64_t>());
    }
    if (!ok) {
      return absl::InvalidArgumentError(
          where +
          ": \"linvideo.timesteps\" must be an array of integers (at most 1000; e.g. [1000, 750, "
          "500, 250])");
    }
  }
  absl::Status declared = params::DeclareSampler(sampler, timesteps, l);
  if (!declared.ok())
    return absl::Status(declared.code(), absl::StrCat(where, ": ", declared.message()));
  limits = std::move(l);
  return absl::OkStatus();
}

}  // namespace linvideo::core::pipeline

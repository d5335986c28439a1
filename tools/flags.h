#pragma once
// Minimal command-line flags for the offline tools: `--name value`, `--name=value`, `--switch`,
// positional arguments. Unknown flags are errors that list the known ones.

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace linvideo::tools {

class Flags {
 public:
  // `known` are the accepted flag names (without "--"); `switches` take no value.
  static absl::StatusOr<Flags> Parse(const std::vector<std::string>& args,
                                     const std::set<std::string>& known,
                                     const std::set<std::string>& switches = {});

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  // A switch: given as `--name` or `--name=true`; absent or `--name=false` is off.
  bool Switch(const std::string& name) const { return Has(name) && Get(name) != "false"; }
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  absl::StatusOr<std::string> Required(const std::string& name) const;
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t fallback) const;
  absl::StatusOr<double> GetDouble(const std::string& name, double fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace linvideo::tools

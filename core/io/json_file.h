#pragma once
// JSON files (config.json, model_index.json, index files): read with clear errors, write atomically.

#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace linvideo::core::io {

// NOT_FOUND if missing; INVALID_ARGUMENT with the parse error position if malformed.
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path);
absl::Status WriteJsonFile(const std::string& path, const nlohmann::json& value);
// Atomic write of bytes (temp file, fsync, rename, fsync folder).
absl::Status WriteFileAtomic(const std::string& path, const std::string& bytes);

}  // namespace linvideo::core::io

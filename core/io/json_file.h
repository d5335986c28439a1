#pragma once
// JSON files (config.json, model_index.json, index files): read with clear errors, write
// atomically.
//
// Parsing is strict: besides syntax errors, duplicate keys in one object (which nlohmann::json
// would silently resolve) and nesting deeper than kMaxJsonDepth are INVALID_ARGUMENT. All functions
// are reentrant.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace linvideo::core::io {

inline constexpr int kMaxJsonDepth = 64;
// Largest file ReadJsonFile accepts.
inline constexpr uint64_t kMaxJsonFileBytes = 256ull << 20;

// Parses `text`; `source` names it in error messages (a path, "safetensors header", ...).
// INVALID_ARGUMENT with line/column/byte of a syntax error, or the duplicated key.
absl::StatusOr<nlohmann::json> ParseJson(std::string_view text, const std::string& source);

// NOT_FOUND if missing; INVALID_ARGUMENT with the parse error position if malformed.
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path);
// Pretty-printed (2-space indent, trailing newline), atomic. INVALID_ARGUMENT if `value` holds
// strings that are not valid UTF-8.
absl::Status WriteJsonFile(const std::string& path, const nlohmann::json& value);
// Atomic write of bytes (temp file, fsync, rename, fsync folder).
absl::Status WriteFileAtomic(const std::string& path, const std::string& bytes);

}  // namespace linvideo::core::io

#pragma once
// Typed fields of JSON config objects (config.json of the DiT, text encoder, VAE, server): an
// absent or null key keeps the caller's default; a value of the wrong type is INVALID_ARGUMENT
// naming the config, the key, the expected type and what was found.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace linvideo::core::io {

absl::Status ReadJsonField(const nlohmann::json& j, const char* key, absl::string_view context,
                           int64_t* out);
absl::Status ReadJsonField(const nlohmann::json& j, const char* key, absl::string_view context,
                           double* out);
absl::Status ReadJsonField(const nlohmann::json& j, const char* key, absl::string_view context,
                           bool* out);
absl::Status ReadJsonField(const nlohmann::json& j, const char* key, absl::string_view context,
                           std::string* out);
absl::Status ReadJsonField(const nlohmann::json& j, const char* key, absl::string_view context,
                           std::vector<int64_t>* out);
absl::Status ReadJsonField(const nlohmann::json& j, const char* key, absl::string_view context,
                           std::vector<double>* out);
absl::Status ReadJsonField(const nlohmann::json& j, const char* key, absl::string_view context,
                           std::vector<bool>* out);

// NOT present (or null) -> INVALID_ARGUMENT "<context>: missing required field '<key>'".
absl::Status RequireJsonField(const nlohmann::json& j, const char* key, absl::string_view context);

}  // namespace linvideo::core::io

#pragma once
// Writing encoded media (or any bytes) to a file. Thread-safe for distinct paths.

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace linvideo::media {

// Writes `bytes` to `path`, replacing any existing file. INVALID_ARGUMENT for an empty path;
// the errno text (e.g. NOT_FOUND / PERMISSION_DENIED) if the file cannot be written completely.
absl::Status SaveBytes(const std::string& path, std::string_view bytes);

// Reads a whole file (for tests and tools); the errno text if it cannot be read.
absl::StatusOr<std::string> LoadBytes(const std::string& path);

}  // namespace linvideo::media

#pragma once
// SHA-256 (FIPS 180-4) of bytes and of files, as lowercase hex — what `sha256sum` prints. Used to
// name the exact weights a converted model came from (its lineage). Pure functions; thread-safe.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace linvideo::core::io {

// Incremental hasher: Update any number of times, then Hex once.
class Sha256 {
 public:
  Sha256();
  void Update(std::string_view bytes);
  // The digest as 64 lowercase hex digits. The hasher must not be updated afterwards.
  std::string Hex();

 private:
  void Block(const uint8_t* block);
  uint32_t h_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t length_ = 0;  // bytes
};

std::string Sha256Hex(std::string_view bytes);
// Streams the file; NOT_FOUND / INTERNAL name the path.
absl::StatusOr<std::string> Sha256File(const std::string& path);
// One digest over several files: the SHA-256 of "<name>  <sha256>\n" lines (sha256sum's format)
// for the files in the given order, names relative to `root`. For a model component whose weights
// may be sharded.
absl::StatusOr<std::string> Sha256Files(const std::string& root,
                                        const std::vector<std::string>& files);

}  // namespace linvideo::core::io

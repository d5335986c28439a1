#pragma once
// Low-level file helpers shared by the checkpoint writers: crash-safe (atomic) replacement of a
// file and reading a whole small file. Internal to core/io, but safe to use elsewhere.
//
// Thread safety: the functions are reentrant; two concurrent atomic writes to the same path leave
// one of the two complete files (the later rename wins).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace linvideo::core::io {

// Appends bytes to an open file descriptor, retrying partial writes and EINTR.
class FileSink {
 public:
  explicit FileSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  absl::Status Write(const void* data, size_t size);
  uint64_t bytes_written() const { return bytes_written_; }

 private:
  int fd_;
  std::string path_;  // for error messages
  uint64_t bytes_written_ = 0;
};

// Creates `path` atomically: `fill` writes the content into a temp file in the same folder, which
// is then fsync'ed, renamed over `path` and the folder fsync'ed. On any error the temp file is
// removed and an existing `path` is left untouched. The file gets mode 0644.
absl::Status WriteFileAtomicWith(const std::string& path,
                                 const std::function<absl::Status(FileSink&)>& fill);

// Reads a whole file of at most `max_bytes`. NOT_FOUND if it does not exist, INVALID_ARGUMENT if it
// is not a regular file or larger than `max_bytes`.
absl::StatusOr<std::string> ReadFileToString(const std::string& path, uint64_t max_bytes);

}  // namespace linvideo::core::io

#include "media/bytes_io.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace linvideo::media {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

absl::Status ErrnoStatus(int err, const std::string& what) {
  std::string message = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace

absl::Status SaveBytes(const std::string& path, std::string_view bytes) {
  if (path.empty()) return absl::InvalidArgumentError("SaveBytes: the path is empty");
  std::FILE* raw = std::fopen(path.c_str(), "wb");
  if (raw == nullptr) return ErrnoStatus(errno, absl::StrCat("opening ", path, " for writing"));
  std::unique_ptr<std::FILE, FileCloser> file(raw);
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), raw) != bytes.size()) {
    return ErrnoStatus(errno, absl::StrCat("writing ", path));
  }
  if (std::fclose(file.release()) != 0) return ErrnoStatus(errno, absl::StrCat("closing ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::string> LoadBytes(const std::string& path) {
  std::FILE* raw = std::fopen(path.c_str(), "rb");
  if (raw == nullptr) return ErrnoStatus(errno, absl::StrCat("opening ", path));
  std::unique_ptr<std::FILE, FileCloser> file(raw);
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), raw)) > 0) data.append(buf, n);
  if (std::ferror(raw)) return ErrnoStatus(errno, absl::StrCat("reading ", path));
  return data;
}

}  // namespace linvideo::media

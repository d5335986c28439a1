#pragma once
// The server's bearer token (auth.admin_token_file): compared in constant time, and re-read when
// the file changes, so an operator rotates it by rewriting the file — no restart. A rewrite that
// leaves the file empty or unreadable keeps the previous token (logged): a half-written file must
// neither lock every client out nor open the server up.
// Thread safety: every method may be called from any thread.

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace linvideo::server {

class BearerToken {
 public:
  // No token: Check allows everything.
  BearerToken() = default;
  // Reads `file` (surrounding whitespace stripped); FAILED_PRECONDITION when it is unreadable or
  // empty. The file is looked at again at most every `recheck`.
  static absl::StatusOr<std::unique_ptr<BearerToken>> FromFile(
      const std::string& file, absl::Duration recheck = absl::Seconds(1));

  bool enabled() const { return !file_.empty(); }
  // `authorization` is the request's metadata value (nullptr when absent): OK, UNAUTHENTICATED
  // (missing) or PERMISSION_DENIED (wrong), with a message that says which.
  absl::Status Check(const std::string_view* authorization) const;

 private:
  void Refresh() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::string file_;
  absl::Duration recheck_;
  mutable absl::Mutex mu_;
  mutable std::string token_ ABSL_GUARDED_BY(mu_);
  mutable absl::Time next_check_ ABSL_GUARDED_BY(mu_);
  mutable struct timespec mtime_ ABSL_GUARDED_BY(mu_) = {};
  mutable ino_t inode_ ABSL_GUARDED_BY(mu_) = 0;
  mutable off_t size_ ABSL_GUARDED_BY(mu_) = 0;
};

// a == b in time that depends only on the lengths, not on where they differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace linvideo::server

#include "server/bearer_token.h"

#include <sys/stat.h>

#include <algorithm>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/io/file_util.h"
#include "server/log.h"

namespace linvideo::server {

namespace {

// A token is a line of text: anything beyond 64 KiB is not one.
absl::StatusOr<std::string> ReadToken(const std::string& file) {
  absl::StatusOr<std::string> text = core::io::ReadFileToString(file, 64 << 10);
  if (!text.ok()) return absl::FailedPreconditionError(text.status().message());
  std::string token(absl::StripAsciiWhitespace(*text));
  if (token.empty()) return absl::FailedPreconditionError(absl::StrCat(file, " is empty"));
  return token;
}

}  // namespace

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Every byte of the longer string is visited whatever the contents; the length difference is
  // folded into the result rather than returned early.
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

absl::StatusOr<std::unique_ptr<BearerToken>> BearerToken::FromFile(const std::string& file,
                                                                   absl::Duration recheck) {
  absl::StatusOr<std::string> token = ReadToken(file);
  if (!token.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("auth.admin_token_file: ", token.status().message()));
  }
  auto t = std::make_unique<BearerToken>();
  t->file_ = file;
  t->recheck_ = recheck;
  absl::MutexLock lock(&t->mu_);
  t->token_ = std::move(*token);
  struct stat st;
  if (stat(file.c_str(), &st) == 0) {
    t->mtime_ = st.st_mtim;
    t->inode_ = st.st_ino;
    t->size_ = st.st_size;
  }
  t->next_check_ = absl::Now() + recheck;
  return t;
}

void BearerToken::Refresh() const {
  const absl::Time now = absl::Now();
  if (now < next_check_) return;
  next_check_ = now + recheck_;
  struct stat st;
  if (stat(file_.c_str(), &st) != 0) return;  // moved away for a moment: keep the token
  if (st.st_ino == inode_ && st.st_size == size_ && st.st_mtim.tv_sec == mtime_.tv_sec &&
      st.st_mtim.tv_nsec == mtime_.tv_nsec) {
    return;
  }
  absl::StatusOr<std::string> token = ReadToken(file_);
  if (!token.ok()) {
    LV_LOG(WARNING) << "auth.admin_token_file changed but " << token.status().message()
                    << "; the previous token stays in force";
    return;
  }
  mtime_ = st.st_mtim;
  inode_ = st.st_ino;
  size_ = st.st_size;
  if (!ConstantTimeEquals(*token, token_)) {
    token_ = std::move(*token);
    LV_LOG(INFO) << "auth.admin_token_file changed: the new token is in force";
  }
}

absl::Status BearerToken::Check(const std::string_view* authorization) const {
  if (!enabled()) return absl::OkStatus();
  if (authorization == nullptr) {
    return absl::UnauthenticatedError(
        "missing 'authorization: Bearer <token>' metadata (this call needs the server token)");
  }
  constexpr std::string_view kScheme = "Bearer ";
  const bool bearer = authorization->substr(0, kScheme.size()) == kScheme;
  const std::string_view given = bearer ? authorization->substr(kScheme.size()) : "";
  bool match;
  {
    absl::MutexLock lock(&mu_);
    Refresh();
    match = ConstantTimeEquals(given, token_);
  }
  if (!bearer || !match) {
    return absl::PermissionDeniedError("bearer token does not match the server's token");
  }
  return absl::OkStatus();
}

}  // namespace linvideo::server

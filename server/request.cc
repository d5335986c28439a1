#include "server/request.h"

namespace linvideo::server {

bool ServeRequest::Fail(const absl::Status& status) {
  absl::MutexLock lock(&mu);
  if (Terminal()) return false;
  phase = status.code() == absl::StatusCode::kCancelled ? RequestPhase::kCancelled
                                                        : RequestPhase::kFailed;
  error = status;
  finished = absl::Now();
  Push(FailedEvent{});
  return true;
}

bool ServeRequest::PopEvent(ServeEvent* out, absl::Duration timeout) {
  absl::MutexLock lock(&mu);
  auto has = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !events.empty(); };
  if (!mu.AwaitWithTimeout(absl::Condition(&has), timeout)) return false;
  *out = std::move(events.front());
  events.pop_front();
  return true;
}

}  // namespace linvideo::server

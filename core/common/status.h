#pragma once
// absl::Status helpers shared by every core/ module, and the one place where LibTorch's exceptions
// (c10::Error) are turned into absl::Status at the core boundary.

#include <exception>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LV_STATUS_CONCAT_INNER(a, b) a##b
#define LV_STATUS_CONCAT(a, b) LV_STATUS_CONCAT_INNER(a, b)

// Returns from the current function if `expr` (an absl::Status) is not OK.
#define LV_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status lv_status_ = (expr);      \
    if (!lv_status_.ok()) return lv_status_; \
  } while (0)

// `LV_ASSIGN_OR_RETURN(auto x, MakeX());` — unwraps a StatusOr or returns its error.
#define LV_ASSIGN_OR_RETURN(lhs, expr) \
  LV_ASSIGN_OR_RETURN_IMPL(LV_STATUS_CONCAT(lv_statusor_, __LINE__), lhs, expr)
#define LV_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

namespace linvideo::core {

// Prefixes `context: ` to a non-OK status message, keeping its code.
absl::Status Annotate(const absl::Status& status, const std::string& context);

// Converts the exception currently being handled into a Status (use inside `catch (...)`).
absl::Status StatusFromCurrentException(const std::string& context);

// Runs `fn` (returning T, Status or StatusOr<T>) and converts any exception LibTorch throws
// (c10::Error: shape mismatches, OOM, ...) into an INTERNAL/INVALID_ARGUMENT status.
template <typename Fn>
auto TorchCall(const std::string& context, Fn&& fn) {
  using R = std::invoke_result_t<Fn>;
  if constexpr (std::is_same_v<R, absl::Status>) {
    try {
      return fn();
    } catch (...) {
      return StatusFromCurrentException(context);
    }
  } else if constexpr (std::is_void_v<R>) {
    try {
      fn();
      return absl::OkStatus();
    } catch (...) {
      return StatusFromCurrentException(context);
    }
  } else {
    using Out = std::conditional_t<std::is_convertible_v<absl::Status, R> &&
                                       !std::is_same_v<R, absl::Status>,
                                   R, absl::StatusOr<R>>;
    try {
      return Out(fn());
    } catch (...) {
      return Out(StatusFromCurrentException(context));
    }
  }
}

}  // namespace linvideo::core

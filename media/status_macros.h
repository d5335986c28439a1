#pragma once
// Status plumbing for media/ (which does not depend on core/common): LV_MEDIA_RETURN_IF_ERROR and
// LV_MEDIA_ASSIGN_OR_RETURN, as core's LV_ macros. Internal to media/.

#include <utility>

#include "absl/status/status.h"

#define LV_MEDIA_CONCAT_INNER(a, b) a##b
#define LV_MEDIA_CONCAT(a, b) LV_MEDIA_CONCAT_INNER(a, b)
#define LV_MEDIA_RETURN_IF_ERROR(expr)                   \
  do {                                                   \
    ::absl::Status lv_media_status_ = (expr);            \
    if (!lv_media_status_.ok()) return lv_media_status_; \
  } while (0)
#define LV_MEDIA_ASSIGN_OR_RETURN(lhs, expr) \
  LV_MEDIA_ASSIGN_OR_RETURN_IMPL(LV_MEDIA_CONCAT(lv_media_statusor_, __LINE__), lhs, expr)
#define LV_MEDIA_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()

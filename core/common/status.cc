#include "core/common/status.h"

#include <c10/util/Exception.h>

#include <new>

namespace linvideo::core {

absl::Status Annotate(const absl::Status& status, const std::string& context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), context + ": " + std::string(status.message()));
}

absl::Status StatusFromCurrentException(const std::string& context) {
  try {
    throw;
  } catch (const c10::Error& e) {
    // what_without_backtrace keeps messages short enough to return to a user.
    return absl::InternalError(context + ": " + e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(context + ": out of memory");
  } catch (const std::exception& e) {
    return absl::InternalError(context + ": " + e.what());
  } catch (...) {
    return absl::InternalError(context + ": unknown exception");
  }
}

}  // namespace linvideo::core

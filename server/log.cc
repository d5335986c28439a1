#include "server/log.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace linvideo::server {

LogLine::LogLine(LogLevel level, const char* file, int line) {
  static const bool quiet = [] {
    const char* v = std::getenv("LINVIDEO_LOG_QUIET");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  enabled_ = !(quiet && level == LogLevel::INFO);
  if (!enabled_) return;
  const char* base = std::strrchr(file, '/');
  os_ << "IWE"[static_cast<int>(level)]
      << absl::FormatTime("%m%d %H:%M:%E3S", absl::Now(), absl::LocalTimeZone()) << " "
      << (base ? base + 1 : file) << ":" << line << "] ";
}

LogLine::~LogLine() {
  if (!enabled_) return;
  os_ << "\n";
  const std::string s = os_.str();
  std::fwrite(s.data(), 1, s.size(), stderr);
}

}  // namespace linvideo::server

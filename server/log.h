#pragma once
// A tiny structured logger: one line per event to stderr, "I0612 10:00:00.123 engine.cc:42] k=v
// ...". Levels: INFO, WARNING, ERROR; LINVIDEO_LOG_QUIET=1 in the environment (read once) drops
// INFO. Thread-safe (each line is written with one fwrite).

#include <sstream>
#include <string>

namespace linvideo::server {

enum class LogLevel { INFO, WARNING, ERROR };

class LogLine {
 public:
  LogLine(LogLevel level, const char* file, int line);
  ~LogLine();
  template <typename T>
  LogLine& operator<<(const T& v) {
    if (enabled_) os_ << v;
    return *this;
  }

 private:
  bool enabled_;
  std::ostringstream os_;
};

}  // namespace linvideo::server

#define LV_LOG(level) \
  ::linvideo::server::LogLine(::linvideo::server::LogLevel::level, __FILE__, __LINE__)

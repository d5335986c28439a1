#pragma once
// Helpers shared by the libFuzzer targets: a per-process scratch folder for parsers that read
// files, and a check that aborts (a libFuzzer "crash") with a message when an invariant breaks.

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace linvideo::fuzz {

#ifndef LINVIDEO_SOURCE_DIR
#error "LINVIDEO_SOURCE_DIR must name the source tree (tests/fuzz/CMakeLists.txt defines it)"
#endif

// A file of the source tree, e.g. SourceFile("models/default/tokenizer").
inline std::string SourceFile(const char* relative) {
  return std::string(LINVIDEO_SOURCE_DIR "/") + relative;
}

// A fresh folder for this process (removed at exit); TMPDIR or /tmp.
inline const std::string& ScratchDir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::filesystem::path p = std::filesystem::path(tmp != nullptr ? tmp : "/tmp") /
                              ("linvideo-fuzz-" + std::to_string(getpid()));
    std::filesystem::create_directories(p);
    static struct Cleanup {
      std::filesystem::path path;
      ~Cleanup() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
      }
    } cleanup{p};
    return p.string();
  }();
  return dir;
}

// Replaces `path` with the bytes (the parsers under test read whole files).
inline void WriteFile(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
}

// An invariant of the code under test: abort with `what` when it does not hold.
inline void Check(bool ok, std::string_view what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant broken: %.*s\n", static_cast<int>(what.size()),
                 what.data());
    std::abort();
  }
}

}  // namespace linvideo::fuzz

// The server's --config JSON (server/config.h ApplyConfigText) from arbitrary bytes, then
// Validate(). Invariants: nothing throws; the text is either refused with a message or applied.
#include "server/config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  linvideo::server::ServerConfig config;
  absl::Status s = linvideo::server::ApplyConfigText(
      std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json", config);
  if (!s.ok()) {
    linvideo::fuzz::Check(!s.message().empty(), "a refused config has no message");
    return 0;
  }
  (void)config.Validate();
  return 0;
}

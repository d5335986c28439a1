#include "server/thread_stack.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>

#include <cerrno>
#include <climits>
#include <cstddef>
#include <limits>

namespace linvideo::server {
namespace {

int AddTls(struct dl_phdr_info* info, size_t /*size*/, void* data) {
  auto* total = static_cast<int64_t*>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_TLS) continue;
    const int64_t align = ph.p_align > 1 ? static_cast<int64_t>(ph.p_align) : 1;
    *total += (static_cast<int64_t>(ph.p_memsz) + align - 1) / align * align;
  }
  return 0;
}

using SetStackSizeFn = int (*)(pthread_attr_t*, size_t);

SetStackSizeFn NextSetStackSize() {
  static const auto next =
      reinterpret_cast<SetStackSizeFn>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  return next;
}

// Both looked up while the executable's constructors run (every library loaded at start is
// there), so a later first call, e.g. from a library's constructor inside dlopen, does not have to.
// A call before that (from a library's own constructor) initialises them itself, thread-safely.
// A fully static executable is not supported: there RTLD_NEXT finds nothing and sized threads fail.
__attribute__((constructor)) void InitThreadStack() {
  StaticTlsBytes();
  NextSetStackSize();
}

}  // namespace

int64_t StaticTlsBytes() {
  static const int64_t bytes = [] {
    int64_t total = 0;
    dl_iterate_phdr(AddTls, &total);
    return total;
  }();
  return bytes;
}

}  // namespace linvideo::server

// The interposer (see thread_stack.h). Found before libc's because the executable exports it
// (server/CMakeLists.txt: --export-dynamic-symbol, and --undefined so every executable that links
// linvideo_server has it), so a library's call lands here; libc's own definition does the work.
extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr, size_t stacksize) noexcept {
  const auto next = linvideo::server::NextSetStackSize();
  if (next == nullptr) return ENOSYS;
  // glibc also takes the thread control block and a little surplus: a PTHREAD_STACK_MIN of margin.
  const auto tls = static_cast<size_t>(linvideo::server::StaticTlsBytes()) + PTHREAD_STACK_MIN;
  const size_t raised =
      stacksize > std::numeric_limits<size_t>::max() - tls ? stacksize : stacksize + tls;
  return next(attr, raised);
}

#include "server/thread_stack.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>

#include <cerrno>
#include <cstddef>

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
// (server/CMakeLists.txt: --export-dynamic-symbol), so a library's call lands here; libc's own
// definition does the work.
extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr, size_t stacksize) {
  using Fn = int (*)(pthread_attr_t*, size_t);
  static const Fn next = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  if (next == nullptr) return ENOSYS;
  return next(attr, stacksize + static_cast<size_t>(linvideo::server::StaticTlsBytes()));
}

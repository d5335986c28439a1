#pragma once
// Threads that ask for a small stack get it on top of the process's static TLS.
//
// glibc carves a thread's static thread-local storage (the PT_TLS blocks of the executable and of
// every library loaded at start) out of the stack the thread asked for, and refuses
// (pthread_create: EINVAL) a stack that cannot hold it. civetweb, under prometheus-cpp's metrics
// exposer, asks for 100 KiB; a process linked against a CUDA build of LibTorch from PyTorch's pip
// wheels carries more static TLS than that, so the exposer failed to start there ("null context
// when constructing CivetServer", session 30 on an H100). thread_stack.cc defines
// pthread_attr_setstacksize, exported from every executable that links linvideo_server, so each
// explicit stack size becomes the size asked for plus the static TLS (and PTHREAD_STACK_MIN of
// margin); default stacks are unchanged. Libraries loaded with RTLD_DEEPBIND bind to libc's own.

#include <cstdint>

namespace linvideo::server {

// Bytes of static TLS in this process (the PT_TLS segments of the objects loaded now, each rounded
// up to its alignment). Computed once.
int64_t StaticTlsBytes();

}  // namespace linvideo::server

#pragma once
// A LibTorch CPU allocator that backs large tensors with transparent huge pages.
//
// Why: large CPU tensors come from mmap (glibc returns them to the kernel on free), so every
// activation of every forward is first-touched again, one 4 KiB page fault at a time. On this
// project's 2-core benchmark machine that was ~15% of a linear-attention call at N = 32,760
// (0.33 -> 0.28 s for a 200 MB output). Allocations of at least kHugePageMinBytes are aligned to
// 2 MiB and madvise(MADV_HUGEPAGE)d, so the kernel maps them with 2 MiB pages when THP is in
// "madvise" or "always" mode (a no-op with "never"). Smaller ones keep LibTorch's 64-byte-aligned
// malloc. Memory is still returned to the system on free; nothing is cached.
//
// InitRuntime() installs it unless LINVIDEO_HUGE_PAGES=0 (e.g. where THP compaction stalls are a
// concern: with /sys/kernel/mm/transparent_hugepage/defrag = madvise a fault may compact memory).
// Thread-safe; install once at start-up.

#include <cstddef>

namespace linvideo::core {

inline constexpr size_t kHugePageMinBytes = size_t{4} << 20;

// Makes the allocator LibTorch's CPU allocator (idempotent). Tensors allocated before keep their
// own deleters, so installing late is safe.
void InstallHugePageAllocator();
bool HugePageAllocatorInstalled();

}  // namespace linvideo::core

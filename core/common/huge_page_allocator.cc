#include "core/common/huge_page_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace linvideo::core {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kSmallAlignment = 64;  // LibTorch's own CPU alignment

void Free(void* ptr) { std::free(ptr); }

class HugePageCpuAllocator final : public c10::Allocator {
 public:
  // LibTorch 1.x declares allocate() const, 2.x (>= 2.3) non-const; defining both (without
  // `override`) makes exactly the one the base declares the override.
  c10::DataPtr allocate(size_t bytes) const {
    void* ptr = nullptr;
    if (bytes > 0) {
      const size_t alignment = bytes >= kHugePageMinBytes ? kHugePage : kSmallAlignment;
      const int error = posix_memalign(&ptr, alignment, bytes);
      TORCH_CHECK(error == 0 && ptr != nullptr, "DefaultCPUAllocator: can't allocate memory: you ",
                  "tried to allocate ", bytes, " bytes (", std::strerror(error), ")");
      if (alignment == kHugePage) {
        // Only whole huge pages can be huge; the tail stays 4 KiB pages. Failure is harmless.
        madvise(ptr, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);
      }
    }
    return {ptr, ptr, &Free, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DataPtr allocate(size_t bytes) { return std::as_const(*this).allocate(bytes); }

  c10::DeleterFnPtr raw_deleter() const override { return &Free; }

  // Pure virtual in LibTorch >= 2.3, absent before: no `override` for the same reason as above.
  void copy_data(void* dest, const void* src, std::size_t count) const {
    if (count > 0) std::memcpy(dest, src, count);
  }
};

std::atomic<bool> installed{false};

}  // namespace

void InstallHugePageAllocator() {
  static HugePageCpuAllocator* allocator = [] {
    auto* a = new HugePageCpuAllocator();  // static lifetime, as SetCPUAllocator requires
    c10::SetCPUAllocator(a, /*priority=*/10);
    installed = true;
    return a;
  }();
  (void)allocator;
}

bool HugePageAllocatorInstalled() { return installed.load(); }

}  // namespace linvideo::core

#include "core/common/huge_page_allocator.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdint>

namespace linvideo::core {
namespace {

TEST(HugePageAllocatorTest, LargeTensorsAreHugePageAlignedAndWork) {
  InstallHugePageAllocator();
  InstallHugePageAllocator();  // idempotent
  ASSERT_TRUE(HugePageAllocatorInstalled());
  const int64_t n = (kHugePageMinBytes / sizeof(float)) * 3 + 17;  // not a whole number of pages
  at::Tensor big = at::arange(n, at::kFloat);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big.data_ptr()) % (uintptr_t{2} << 20), 0u);
  EXPECT_EQ(big[n - 1].item<float>(), static_cast<float>(n - 1));
  at::Tensor small = at::ones({1000});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.data_ptr()) % 64, 0u);
  EXPECT_EQ(small.sum().item<float>(), 1000.0f);
  // Clones, resizes and empty tensors go through the same allocator.
  at::Tensor copy = big.clone();
  EXPECT_TRUE(copy.equal(big));
  at::Tensor empty = at::empty({0});
  EXPECT_EQ(empty.numel(), 0);
  small.resize_({n});
  small.fill_(2.0f);
  EXPECT_EQ(small[n - 1].item<float>(), 2.0f);
}

}  // namespace
}  // namespace linvideo::core

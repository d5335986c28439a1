// StreamMark / SideStreamScope (kernels/cuda_stream.h): no-ops on the CPU; on a GPU (label gpu,
// skipped without one) work on a side stream that waits for a mark sees everything enqueued before
// the mark on the producing stream.

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "kernels/cuda_stream.h"

namespace linvideo::kernels {
namespace {

TEST(CudaStreamTest, NothingHappensOnTheCpu) {
  const c10::Device cpu(c10::kCPU);
  const StreamMark mark = StreamMark::Record(cpu);
  EXPECT_TRUE(mark.empty());
  mark.WaitOnCurrentStream();
  StreamMark().WaitOnCurrentStream();  // an empty mark too
  const SideStreamScope side(cpu);
  EXPECT_EQ(at::ones({3}).sum().item<float>(), 3.f);
}

TEST(CudaStreamGpuTest, SideStreamWaitsForTheMark) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const c10::Device gpu(c10::kCUDA, 0);
  const auto opts = at::TensorOptions().device(gpu);
  for (int round = 0; round < 3; ++round) {
    // ~15 ms of products on this thread's stream, then the value the consumer must see.
    auto a = at::randn({2048, 2048}, opts) / 45.0;
    at::Tensor y = a;
    for (int i = 0; i < 50; ++i) y = at::mm(y, a);
    y.fill_(3.0);
    const StreamMark mark = StreamMark::Record(gpu);
    ASSERT_FALSE(mark.empty());
    double seen = 0;
    {
      const SideStreamScope side(gpu);
      mark.WaitOnCurrentStream();
      seen = y.sum().item<double>();  // on the side stream; item() waits for it alone
    }
    EXPECT_EQ(seen, 3.0 * 2048 * 2048) << "round " << round;
    // After the scope this thread is back on its own stream, which still works.
    EXPECT_EQ(y.mul(2).sum().item<double>(), 6.0 * 2048 * 2048);
  }
}

}  // namespace
}  // namespace linvideo::kernels

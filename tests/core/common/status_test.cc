#include "core/common/status.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/common/runtime.h"

namespace linvideo::core {
namespace {

TEST(TorchCallTest, ConvertsTorchErrorsToStatus) {
  absl::StatusOr<torch::Tensor> r = TorchCall("matmul", [] {
    return torch::matmul(torch::ones({2, 3}), torch::ones({4, 5}));  // shape mismatch throws
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(r.status().message().find("matmul:"), std::string::npos);
}

TEST(TorchCallTest, PassesValuesAndStatuses) {
  auto v = TorchCall("add", [] { return 1 + 2; });
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 3);
  absl::Status s = TorchCall("fails", [] { return absl::NotFoundError("x"); });
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
}

TEST(RuntimeTest, ACgroupCpuQuotaCapsTheCores) {
  EXPECT_EQ(CpusFromCgroupCpuMax("800000 100000\n"), 8);
  EXPECT_EQ(CpusFromCgroupCpuMax("150000 100000"), 2);  // 1.5 CPUs: rounded up
  EXPECT_EQ(CpusFromCgroupCpuMax("1000 100000"), 1);
  EXPECT_EQ(CpusFromCgroupCpuMax("max 100000\n"), 0);  // no limit
  EXPECT_EQ(CpusFromCgroupCpuMax(""), 0);
  EXPECT_EQ(CpusFromCgroupCpuMax("abc 100000"), 0);
  EXPECT_EQ(CpusFromCgroupCpuMax("800000 0"), 0);
  EXPECT_GE(AvailableCores(), 1);
}

TEST(RuntimeTest, UsesAllCoresAndParsesOptions) {
  EXPECT_EQ(InitRuntime(), AvailableCores());
  EXPECT_TRUE(ParseDevice("cuda:1").ok());
  EXPECT_FALSE(ParseDevice("tpu").ok());
  EXPECT_EQ(*ParseDtype("bf16"), c10::kBFloat16);
  auto bad = ParseDtype("int8");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("allowed"), std::string::npos);
}

}  // namespace
}  // namespace linvideo::core

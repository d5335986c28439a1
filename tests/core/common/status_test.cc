#include "core/common/status.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

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

  // A hierarchy: the pod allows 4 CPUs, its container 6, the node no limit: 4.
  const std::string root = ::testing::TempDir() + "/cgroup-" + std::to_string(getpid());
  std::filesystem::create_directories(root + "/kubepods/pod1/ctr");
  std::ofstream(root + "/cpu.max") << "max 100000\n";
  std::ofstream(root + "/kubepods/pod1/cpu.max") << "400000 100000\n";
  std::ofstream(root + "/kubepods/pod1/ctr/cpu.max") << "600000 100000\n";
  EXPECT_EQ(CgroupCpuLimit("0::/kubepods/pod1/ctr\n", root), 4);
  EXPECT_EQ(CgroupCpuLimit("0::/kubepods/pod1/ctr", root), 4);
  EXPECT_EQ(CgroupCpuLimit("0::/\n", root), 0);                  // the root's "max"
  EXPECT_EQ(CgroupCpuLimit("4:memory:/x\n1:cpu:/\n", root), 0);  // cgroup v1 only
  EXPECT_EQ(CgroupCpuLimit("", root), 0);
  std::filesystem::remove_all(root);
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

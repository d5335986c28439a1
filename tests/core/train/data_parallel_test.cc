// The torchrun / Kubeflow environment parsing and the batch sharding of core/train/data_parallel.h.
// The multi-process behaviour (2 processes = 1 process on the combined batch, resume after a rank
// dies) is tested through linvideo-train in tests/tools/distributed_train_test.cc.

#include "core/train/data_parallel.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace linvideo::core::train {
namespace {

absl::StatusOr<ParallelEnv> Parse(const std::map<std::string, std::string>& vars) {
  return ParseParallelEnv([&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

TEST(ParallelEnvTest, NoVariablesIsOneProcess) {
  auto env = Parse({});
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->world_size, 1);
  EXPECT_EQ(env->rank, 0);
}

TEST(ParallelEnvTest, ReadsTheTorchrunVariables) {
  auto env = Parse({{"WORLD_SIZE", "4"},
                    {"RANK", "3"},
                    {"LOCAL_RANK", "1"},
                    {"MASTER_ADDR", "trainer-0.trainer"},
                    {"MASTER_PORT", "29500"}});
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->world_size, 4);
  EXPECT_EQ(env->rank, 3);
  EXPECT_EQ(env->local_rank, 1);
  EXPECT_EQ(env->master_addr, "trainer-0.trainer");
  EXPECT_EQ(env->master_port, 29500);
  // LOCAL_RANK defaults to RANK (one process per machine).
  env = Parse({{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}});
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->local_rank, 1);
}

TEST(ParallelEnvTest, BadValuesSayWhatIsWrongAndWhatIsAllowed) {
  struct Case {
    std::map<std::string, std::string> vars;
    std::string message;
  };
  const Case cases[] = {
      {{{"WORLD_SIZE", "two"}}, "WORLD_SIZE='two' is not a non-negative integer"},
      {{{"WORLD_SIZE", "0"}}, "must be >= 1"},
      {{{"WORLD_SIZE", "2"}, {"RANK", "2"}}, "RANK=2 is not below WORLD_SIZE=2 (ranks are 0..1)"},
      {{{"WORLD_SIZE", "2"}, {"RANK", "-1"}}, "RANK='-1'"},
      {{{"WORLD_SIZE", "2"}, {"RANK", "0"}}, "needs MASTER_ADDR"},
      {{{"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}, "needs MASTER_PORT in 1..65535"},
      {{{"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}}, "got 70000"},
  };
  for (const Case& c : cases) {
    auto env = Parse(c.vars);
    ASSERT_FALSE(env.ok()) << c.message;
    EXPECT_EQ(env.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(env.status().message().find(c.message), std::string::npos) << env.status();
  }
}

TEST(DataParallelTest, OneProcessIsTheWholeBatchAndCollectivesAreIdentities) {
  DataParallel& group = DataParallel::Get();
  EXPECT_FALSE(group.distributed());
  EXPECT_TRUE(group.root());
  auto shard = group.ShardOf(6, "--batch");
  ASSERT_TRUE(shard.ok());
  EXPECT_EQ(shard->begin, 0);
  EXPECT_EQ(shard->count, 6);
  EXPECT_EQ(*group.GlobalSum(2.5), 2.5);
  EXPECT_EQ(*group.GlobalMean(2.5), 2.5);
  EXPECT_TRUE(group.CheckSame(1.0, "x").ok());
  EXPECT_TRUE(group.Barrier().ok());
  torch::Tensor p = torch::ones({3}, torch::requires_grad());
  (p * 2).sum().backward();
  ASSERT_TRUE(group.AverageGradients({p}).ok());
  EXPECT_TRUE(torch::equal(p.grad(), torch::full({3}, 2.0)));
}

TEST(DataParallelTest, ChecksumSeesEveryBitAndNotTheOrder) {
  const torch::Tensor a = torch::randn({1000});
  const double sum = DataParallel::ParameterChecksum({a, a * 2});
  EXPECT_EQ(sum, DataParallel::ParameterChecksum({a, a * 2}));
  torch::Tensor b = a.clone();
  b[17] = std::nextafter(b[17].item<float>(), 10.0f);  // one ulp
  EXPECT_NE(sum, DataParallel::ParameterChecksum({b, a * 2}));
}

TEST(DataParallelTest, SecondInitIsRefused) {
  ASSERT_TRUE(DataParallel::Init(ParallelEnv{}, std::chrono::seconds(1)).ok());
  const absl::Status again = DataParallel::Init(ParallelEnv{}, std::chrono::seconds(1));
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition) << again;
}

}  // namespace
}  // namespace linvideo::core::train

// server/model_registry.h: hot swaps keep memory bounded — only the active checkpoint and
// `keep_previous` replaced ones stay loaded; the rest are freed as soon as nothing pins them.
#include "server/model_registry.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "server/fake_executor.h"

namespace linvideo::server {
namespace {

namespace fs = std::filesystem;

class ModelRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / ("model_registry_test_" + std::to_string(getpid()));
    for (int i = 0; i <= 20; ++i) {
      fs::create_directories(root_ / ("c" + std::to_string(i)));
      std::ofstream(root_ / ("c" + std::to_string(i)) / "fake_model.json") << "{}";
    }
  }
  void TearDown() override { fs::remove_all(root_); }

  // 20 swaps of model "m"; the weak pointers say which checkpoints are still in memory.
  std::vector<std::weak_ptr<const LoadedModel>> Swap20(ModelRegistry& r) {
    std::vector<std::weak_ptr<const LoadedModel>> loaded;
    auto first = r.LoadInitial("m", (root_ / "c0").string());
    EXPECT_TRUE(first.ok()) << first.status();
    if (first.ok()) loaded.push_back(*first);
    for (int i = 1; i <= 20; ++i) {
      auto next = r.Load("m", "c" + std::to_string(i));
      EXPECT_TRUE(next.ok()) << next.status();
      if (next.ok()) loaded.push_back(*next);
    }
    return loaded;
  }
  static int Alive(const std::vector<std::weak_ptr<const LoadedModel>>& v) {
    int n = 0;
    for (const auto& w : v) n += !w.expired();
    return n;
  }

  fs::path root_;
};

TEST_F(ModelRegistryTest, TwentySwapsKeepTheActiveAndOnePrevious) {
  ModelRegistry r(&FakeExecutor::FromDir, RegistryOptions{root_.string(), 0, nullptr, 1});
  auto loaded = Swap20(r);
  ASSERT_EQ(loaded.size(), 21u);
  EXPECT_EQ(Alive(loaded), 2);
  EXPECT_FALSE(loaded[20].expired());  // active
  EXPECT_FALSE(loaded[19].expired());  // the one Rollback returns to
  EXPECT_EQ(r.All().size(), 2u);
  EXPECT_EQ(r.swaps(), 20);
  auto back = r.Rollback("m");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->version, 20);
  EXPECT_EQ(r.Rollback("m").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ModelRegistryTest, APinnedCheckpointLivesUntilItsRequestEnds) {
  ModelRegistry r(&FakeExecutor::FromDir, RegistryOptions{root_.string(), 0, nullptr, 0});
  auto first = r.LoadInitial("m", (root_ / "c0").string());
  ASSERT_TRUE(first.ok());
  std::shared_ptr<const LoadedModel> pinned = std::move(*first);  // an in-flight request
  std::weak_ptr<const LoadedModel> watch = pinned;
  ASSERT_TRUE(r.Load("m", "c1").ok());
  EXPECT_EQ(r.All().size(), 1u);  // keep_previous 0: no history, no Rollback
  EXPECT_EQ(r.Rollback("m").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(watch.expired());
  pinned.reset();
  EXPECT_TRUE(watch.expired());
}

TEST_F(ModelRegistryTest, LargerHistoryOnRequest) {
  ModelRegistry r(&FakeExecutor::FromDir, RegistryOptions{root_.string(), 0, nullptr, 3});
  auto loaded = Swap20(r);
  EXPECT_EQ(Alive(loaded), 4);
  for (int v : {20, 19, 18}) {
    auto back = r.Rollback("m");
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ((*back)->version, v);
  }
}

}  // namespace
}  // namespace linvideo::server

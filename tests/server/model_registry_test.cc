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

// Checkpoint folders are confined to the root, and so is everything inside them: a symlink that
// leads out (a file, a folder, or nowhere) refuses the load; one that stays inside is fine.
TEST_F(ModelRegistryTest, SymlinksThatLeaveTheRootAreRefused) {
  const fs::path outside = root_.parent_path() / ("outside_" + std::to_string(getpid()));
  fs::create_directories(outside / "dir");
  std::ofstream(outside / "secret") << "not a weight";
  fs::create_symlink(outside / "secret", root_ / "c1" / "weights.safetensors");
  fs::create_symlink(outside / "dir", root_ / "c2" / "transformer");
  fs::create_symlink(root_ / "missing", root_ / "c3" / "vae");
  fs::create_symlink(root_ / "c0" / "fake_model.json", root_ / "c4" / "shared.json");
  fs::create_symlink(root_ / "c5", root_ / "c5" / "loop");
  fs::create_symlink(outside, root_ / "c6-link");
  ModelRegistry r(&FakeExecutor::FromDir, RegistryOptions{root_.string(), 0, nullptr, 1});
  ASSERT_TRUE(r.LoadInitial("m", (root_ / "c0").string()).ok());
  for (const char* dir : {"c1", "c2", "c3"}) {
    auto loaded = r.Load("m", dir);
    ASSERT_FALSE(loaded.ok()) << dir;
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kPermissionDenied) << loaded.status();
    EXPECT_NE(loaded.status().message().find("holds a symlink"), std::string::npos)
        << loaded.status();
  }
  EXPECT_NE(r.Load("m", "c1").status().message().find(outside.string()), std::string::npos);
  EXPECT_EQ(r.Load("a/b", "c4").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.Load("m", "c3").status().message().find("leads nowhere"), std::string::npos);
  EXPECT_TRUE(r.Load("m", "c4").ok()) << "a symlink inside the root is allowed";
  auto loop = r.Load("m", "c5");
  EXPECT_EQ(loop.status().code(), absl::StatusCode::kFailedPrecondition) << loop.status();
  auto linked = r.Load("m", "c6-link");
  EXPECT_EQ(linked.status().code(), absl::StatusCode::kPermissionDenied) << linked.status();
  fs::remove_all(outside);
}

}  // namespace
}  // namespace linvideo::server

// PipelineExecutor on a random-weights tiny model folder: the text-embedding cache is bounded by
// entries and by bytes (the oldest evicted first), and reports the bytes the budget reserves.
#include "server/pipeline_executor.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "core/pipeline/model_folder.h"

namespace linvideo::server {
namespace {

namespace fs = std::filesystem;

class PipelineExecutorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(
        (fs::temp_directory_path() / ("lv_executor_test_" + std::to_string(getpid()))).string());
    core::pipeline::RandomModelOptions options;
    options.seed = 5;
    options.tokenizer_model_file =
        std::string(LINVIDEO_SOURCE_DIR) + "/models/tokenizer/spiece.model";
    auto written = core::pipeline::WriteRandomModelFolder(*dir_, options);
    ASSERT_TRUE(written.ok()) << written.status();
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::unique_ptr<PipelineExecutor> Make(int entries, int64_t bytes) {
    auto e = PipelineExecutor::Create({*dir_}, entries, bytes);
    EXPECT_TRUE(e.ok()) << e.status();
    return std::unique_ptr<PipelineExecutor>(static_cast<PipelineExecutor*>(e->release()));
  }
  // Starts one unguided request (only its prompt is encoded).
  static void Start(PipelineExecutor& e, const std::string& prompt) {
    GenerationParams p;
    p.prompt = prompt;
    p.frames = 1;
    p.steps = 1;
    p.guidance = 0;
    auto resolved = core::params::Resolve(p, e.limits());
    ASSERT_TRUE(resolved.ok()) << resolved.status();
    auto states = e.Start({&*resolved});
    ASSERT_TRUE(states.ok()) << states.status();
  }
  static std::string* dir_;
};
std::string* PipelineExecutorTest::dir_ = nullptr;

TEST_F(PipelineExecutorTest, TheTextCacheIsBoundedByEntriesAndBytes) {
  auto probe = Make(8, int64_t{1} << 30);
  Start(*probe, "a red ball");
  const int64_t one = probe->cache_bytes();
  ASSERT_GT(one, 0);
  Start(*probe, "a red ball");
  EXPECT_EQ(probe->cache_hits(), 1);

  // Room for two embeddings by bytes, eight by entries: the bytes bound.
  auto e = Make(8, 2 * one);
  EXPECT_EQ(e->cache_bytes_limit(), 2 * one);
  for (const char* p : {"a red ball", "a blue square", "a green circle"}) Start(*e, p);
  EXPECT_EQ(e->cache_bytes(), 2 * one);
  Start(*e, "a red ball");  // the oldest, evicted
  EXPECT_EQ(e->cache_hits(), 0);
  Start(*e, "a green circle");
  EXPECT_EQ(e->cache_hits(), 1);

  // One entry by count, whatever the bytes allow.
  auto single = Make(1, int64_t{1} << 30);
  Start(*single, "a red ball");
  Start(*single, "a blue square");
  EXPECT_EQ(single->cache_bytes(), one);

  // No cache: nothing kept, nothing reserved.
  for (const auto& [entries, bytes] : {std::pair<int, int64_t>{0, int64_t{1} << 30}, {8, 0}}) {
    auto off = Make(entries, bytes);
    Start(*off, "a red ball");
    Start(*off, "a red ball");
    EXPECT_EQ(off->cache_hits(), 0);
    EXPECT_EQ(off->cache_bytes(), 0);
    EXPECT_EQ(off->cache_bytes_limit(), 0);
  }
}

}  // namespace
}  // namespace linvideo::server

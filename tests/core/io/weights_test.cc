#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/io/json_file.h"
#include "core/io/safetensors.h"
#include "tests/core/io/io_test_util.h"

namespace linvideo::core::io {
namespace {

using testing::TempDir;

TensorMap Weights() {
  torch::manual_seed(1);
  TensorMap m;
  for (int i = 0; i < 6; ++i) m["blocks." + std::to_string(i) + ".w"] = torch::randn({8, 8});
  m["head.bias"] = torch::randn({8}).to(torch::kBFloat16);
  return m;
}

void ExpectSame(const TensorMap& a, const TensorMap& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  }
}

TEST(WeightsTest, SingleFileRoundTrip) {
  TempDir dir;
  TensorMap in = Weights();
  ASSERT_TRUE(WriteWeights(dir.path(), "model", in).ok());
  EXPECT_EQ(dir.List(), std::vector<std::string>{"model.safetensors"});
  auto out = ReadWeights(dir.path(), "model");
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectSame(in, *out);
  auto any = ReadWeights(dir.path(), "");
  ASSERT_TRUE(any.ok()) << any.status();
  ExpectSame(in, *any);
  auto f32 = ReadWeights(dir.path(), "model", torch::kFloat32);
  EXPECT_EQ(f32->at("head.bias").scalar_type(), torch::kFloat32);
}

TEST(WeightsTest, ShardedRoundTripUsesHuggingFaceNames) {
  TempDir dir;
  TensorMap in = Weights();  // 6 × 256 bytes + 16
  ASSERT_TRUE(WriteWeights(dir.path(), "diffusion_pytorch_model", in, 600, {{"k", "v"}}).ok());
  EXPECT_EQ(dir.List(),
            (std::vector<std::string>{"diffusion_pytorch_model-00001-of-00003.safetensors",
                                      "diffusion_pytorch_model-00002-of-00003.safetensors",
                                      "diffusion_pytorch_model-00003-of-00003.safetensors",
                                      "diffusion_pytorch_model.safetensors.index.json"}));
  auto index = ReadJsonFile(dir.File("diffusion_pytorch_model.safetensors.index.json"));
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ((*index)["metadata"]["total_size"].get<uint64_t>(), 6 * 256 + 16);
  EXPECT_EQ((*index)["weight_map"]["head.bias"].get<std::string>(),
            "diffusion_pytorch_model-00003-of-00003.safetensors");
  auto shard =
      SafetensorsReader::Open(dir.File("diffusion_pytorch_model-00001-of-00003.safetensors"));
  ASSERT_TRUE(shard.ok());
  EXPECT_EQ((*shard)->tensors().size(), 2u);
  EXPECT_EQ((*shard)->metadata().at("k"), "v");
  auto out = ReadWeights(dir.path(), "diffusion_pytorch_model");
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectSame(in, *out);
  auto any = ReadWeights(dir.path(), "");  // the only index wins over the shards
  ASSERT_TRUE(any.ok()) << any.status();
  ExpectSame(in, *any);
}

TEST(WeightsTest, RewritingSwitchesFormsAndRemovesStaleFiles) {
  TempDir dir;
  TensorMap in = Weights();
  ASSERT_TRUE(WriteWeights(dir.path(), "m", in, 300).ok());
  EXPECT_EQ(dir.List().size(), 7u);  // 6 shards (head.bias joins the last) + index
  ASSERT_TRUE(WriteWeights(dir.path(), "m", in, 600).ok());
  EXPECT_EQ(dir.List().size(), 4u);
  ASSERT_TRUE(WriteWeights(dir.path(), "m", in).ok());
  EXPECT_EQ(dir.List(), std::vector<std::string>{"m.safetensors"});
  ASSERT_TRUE(WriteWeights(dir.path(), "m", in, 600).ok());
  EXPECT_EQ(dir.List().size(), 4u);
  ExpectSame(in, *ReadWeights(dir.path(), ""));
}

TEST(WeightsTest, AtomicWritesLeaveNoTempFilesAndReplace) {
  TempDir dir;
  TensorMap a = {{"x", torch::ones({3})}};
  TensorMap b = {{"x", torch::full({5}, 2.0f)}, {"y", torch::zeros({1})}};
  ASSERT_TRUE(WriteSafetensors(dir.File("w.safetensors"), a).ok());
  ASSERT_TRUE(WriteSafetensors(dir.File("w.safetensors"), b).ok());
  EXPECT_EQ(dir.List(), std::vector<std::string>{"w.safetensors"});
  auto r = ReadSafetensors(dir.File("w.safetensors"));
  ExpectSame(b, *r);
  // A failing write leaves the old file as it was.
  TensorMap bad = {{"x", torch::ones({3})}, {"z", torch::zeros({2}, torch::kComplexDouble)}};
  EXPECT_FALSE(WriteSafetensors(dir.File("w.safetensors"), bad).ok());
  EXPECT_EQ(dir.List(), std::vector<std::string>{"w.safetensors"});
  ExpectSame(b, *ReadSafetensors(dir.File("w.safetensors")));
  // Writing into a folder that does not exist fails cleanly.
  EXPECT_FALSE(WriteSafetensors(dir.File("no/such/w.safetensors"), a).ok());
}

class ShardedIndexErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteSafetensors(dir_.File("m-00001-of-00002.safetensors"),
                                 {{"a", torch::ones({2})}, {"b", torch::ones({3})}})
                    .ok());
    ASSERT_TRUE(
        WriteSafetensors(dir_.File("m-00002-of-00002.safetensors"), {{"c", torch::ones({4})}})
            .ok());
  }
  absl::Status ReadWithMap(const nlohmann::json& weight_map) {
    nlohmann::json index = {{"metadata", {{"total_size", 36}}}, {"weight_map", weight_map}};
    EXPECT_TRUE(WriteJsonFile(dir_.File("m.safetensors.index.json"), index).ok());
    return ReadWeights(dir_.path(), "m").status();
  }
  TempDir dir_;
  const std::string s1_ = "m-00001-of-00002.safetensors";
  const std::string s2_ = "m-00002-of-00002.safetensors";
};

void ExpectError(const absl::Status& s, absl::StatusCode code, const std::string& needle) {
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_NE(s.message().find(needle), std::string::npos) << s;
}

TEST_F(ShardedIndexErrorsTest, ValidIndexLoads) {
  EXPECT_TRUE(ReadWithMap({{"a", s1_}, {"b", s1_}, {"c", s2_}}).ok());
}

// An index that maps nothing is not a weights file (found by weights_index_fuzz: it read as an
// empty state dict).
TEST_F(ShardedIndexErrorsTest, EmptyWeightMap) {
  ExpectError(ReadWithMap(nlohmann::json::object()), absl::StatusCode::kInvalidArgument,
              "at least one entry");
}

TEST_F(ShardedIndexErrorsTest, MissingShard) {
  ExpectError(ReadWithMap({{"a", s1_}, {"b", s1_}, {"c", "m-00003-of-00003.safetensors"}}),
              absl::StatusCode::kNotFound, "does not exist");
}

TEST_F(ShardedIndexErrorsTest, TensorMissingFromItsShard) {
  ExpectError(ReadWithMap({{"a", s1_}, {"b", s1_}, {"c", s2_}, {"d", s2_}}),
              absl::StatusCode::kDataLoss, "\"d\" is listed in shard");
}

TEST_F(ShardedIndexErrorsTest, TensorInTwoShards) {
  ASSERT_TRUE(
      WriteSafetensors(dir_.File(s2_), {{"c", torch::ones({4})}, {"a", torch::ones({2})}}).ok());
  ExpectError(ReadWithMap({{"a", s1_}, {"b", s1_}, {"c", s2_}}), absl::StatusCode::kDataLoss,
              "present in two shards");
}

TEST_F(ShardedIndexErrorsTest, ShardHoldsUnlistedTensor) {
  ExpectError(ReadWithMap({{"a", s1_}, {"c", s2_}}), absl::StatusCode::kDataLoss, "does not list");
}

TEST_F(ShardedIndexErrorsTest, ShardPathsMustStayInTheFolder) {
  for (const std::string& file : {std::string("../m-00002-of-00002.safetensors"), dir_.File(s2_),
                                  std::string(".."), std::string("")}) {
    ExpectError(ReadWithMap({{"a", s1_}, {"b", s1_}, {"c", file}}),
                absl::StatusCode::kInvalidArgument, "plain file names");
  }
}

TEST_F(ShardedIndexErrorsTest, MalformedIndex) {
  ExpectError(ReadWithMap(nlohmann::json::array({1})), absl::StatusCode::kInvalidArgument,
              "\"weight_map\" must be an object");
  ExpectError(ReadWithMap({{"a", 1}}), absl::StatusCode::kInvalidArgument, "shard file name");
  ASSERT_TRUE(WriteFileAtomic(dir_.File("m.safetensors.index.json"), "{\"weight_map\": {").ok());
  ExpectError(ReadWeights(dir_.path(), "m").status(), absl::StatusCode::kInvalidArgument,
              "invalid JSON");
}

TEST(WeightsTest, FolderLookupErrors) {
  TempDir dir;
  ExpectError(ReadWeights(dir.path(), "m").status(), absl::StatusCode::kNotFound, "none of");
  ExpectError(ReadWeights(dir.path(), "").status(), absl::StatusCode::kNotFound,
              "no *.safetensors, *.safetensors.index.json, *.pth or *.pt");
  ASSERT_TRUE(WriteSafetensors(dir.File("m.safetensors"), {{"a", torch::ones({1})}}).ok());
  ASSERT_TRUE(WriteSafetensors(dir.File("n.safetensors"), {{"a", torch::ones({1})}}).ok());
  ExpectError(ReadWeights(dir.path(), "").status(), absl::StatusCode::kFailedPrecondition,
              "several");
  ASSERT_TRUE(WriteJsonFile(dir.File("m.safetensors.index.json"),
                            {{"weight_map", nlohmann::json::object()}})
                  .ok());
  ExpectError(ReadWeights(dir.path(), "m").status(), absl::StatusCode::kFailedPrecondition,
              "keep only one");
  ExpectError(ReadWeights(dir.path(), "a/b").status(), absl::StatusCode::kInvalidArgument,
              "without '/'");
  EXPECT_EQ(WriteWeights(dir.path(), "", {}).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace linvideo::core::io

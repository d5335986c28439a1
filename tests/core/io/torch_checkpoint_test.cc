// The torch.save reader on checkpoints written by Debian's python3-torch
// (tests/data/torch_save/torch_save.py, run here; scripts/install-deps.sh installs python3-torch).

#include "core/io/torch_checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "core/io/safetensors.h"
#include "tests/core/io/io_test_util.h"

namespace linvideo::core::io {
namespace {

using testing::TempDir;

// 0, 0.5, 1.0, ... as torch_save.py's arange.
torch::Tensor Arange(int64_t n, torch::ScalarType dtype = torch::kFloat) {
  return (torch::arange(n, torch::kDouble) * 0.5).to(dtype);
}

class TorchCheckpointTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string command = std::string("/usr/bin/python3 ") + LINVIDEO_SOURCE_DIR +
                                "/tests/data/torch_save/torch_save.py cases " + dir_->path();
    ASSERT_EQ(std::system(command.c_str()), 0)
        << command << " failed: these tests need Debian's python3-torch (scripts/install-deps.sh)";
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string File(const std::string& name) { return dir_->File(name); }
  static TempDir* dir_;
};
TempDir* TorchCheckpointTest::dir_ = nullptr;

TEST_F(TorchCheckpointTest, ReadsAStateDictWithEveryDtypeViewsAndSharedStorage) {
  auto sd = ReadTorchCheckpoint(File("state_dict.pth"));
  ASSERT_TRUE(sd.ok()) << sd.status();
  EXPECT_EQ(sd->size(), 10u);
  EXPECT_TRUE(torch::equal(sd->at("blocks.0.weight"), Arange(12).reshape({3, 4})));
  EXPECT_EQ(sd->at("blocks.0.bias").scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(sd->at("blocks.0.bias"), Arange(3, torch::kBFloat16)));
  EXPECT_TRUE(torch::equal(sd->at("half"), Arange(6, torch::kHalf).reshape({2, 3})));
  EXPECT_TRUE(torch::equal(sd->at("double"), Arange(4, torch::kDouble)));
  EXPECT_TRUE(torch::equal(sd->at("steps"), torch::arange(6, torch::kLong).reshape({2, 3})));
  EXPECT_TRUE(torch::equal(sd->at("mask"), torch::tensor({true, false, true})));
  // A strided view comes back as its own contiguous values.
  const torch::Tensor column = sd->at("column");
  EXPECT_TRUE(column.is_contiguous());
  EXPECT_TRUE(torch::equal(column, Arange(20).reshape({4, 5}).select(1, 2)));
  EXPECT_TRUE(torch::equal(sd->at("tied"), sd->at("blocks.0.weight")));
  EXPECT_EQ(sd->at("scalar").dim(), 0);
  EXPECT_EQ(sd->at("scalar").item<float>(), 2.5f);
  EXPECT_EQ(sd->at("empty").sizes().vec(), (std::vector<int64_t>{0, 3}));
  for (const auto& [name, t] : *sd) EXPECT_TRUE(t.device().is_cpu()) << name;
}

TEST_F(TorchCheckpointTest, ConvertsFloatingTensorsOnlyWhenAsked) {
  auto sd = ReadTorchCheckpoint(File("state_dict.pth"), torch::kFloat);
  ASSERT_TRUE(sd.ok()) << sd.status();
  EXPECT_EQ(sd->at("blocks.0.bias").scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(sd->at("blocks.0.bias"), Arange(3)));
  EXPECT_EQ(sd->at("half").scalar_type(), torch::kFloat);
  EXPECT_EQ(sd->at("double").scalar_type(), torch::kFloat);
  EXPECT_EQ(sd->at("steps").scalar_type(), torch::kLong);
  EXPECT_EQ(sd->at("mask").scalar_type(), torch::kBool);
  auto bad = ReadTorchCheckpoint(File("state_dict.pth"), torch::kLong);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TorchCheckpointTest, UnwrapsATrainingCheckpointsStateDict) {
  auto sd = ReadTorchCheckpoint(File("wrapped.pt"));
  ASSERT_TRUE(sd.ok()) << sd.status();
  ASSERT_EQ(sd->size(), 2u);
  EXPECT_TRUE(torch::equal(sd->at("w"), Arange(2)));
  EXPECT_TRUE(torch::equal(sd->at("b"), Arange(3)));
}

// What LibTorch 1.13's own unpickler cannot read: a one-entry dict batch (SETITEM), nn.Parameter.
TEST_F(TorchCheckpointTest, ReadsOneEntryBatchesParametersAndNewerProtocols) {
  for (const char* file : {"one_entry.pth", "parameter.pth"}) {
    auto sd = ReadTorchCheckpoint(File(file));
    ASSERT_TRUE(sd.ok()) << sd.status();
    EXPECT_TRUE(torch::equal(sd->at("w"), Arange(2))) << file;
    EXPECT_FALSE(sd->at("w").requires_grad()) << file;
  }
  auto v2 = ReadTorchCheckpoint(File("state_dict.pth"));
  auto v4 = ReadTorchCheckpoint(File("protocol4.pth"));
  ASSERT_TRUE(v2.ok() && v4.ok()) << v4.status();
  ASSERT_EQ(v2->size(), v4->size());
  for (const auto& [name, t] : *v2) EXPECT_TRUE(torch::equal(t, v4->at(name))) << name;
}

TEST_F(TorchCheckpointTest, NeverRunsWhatThePickleNames) {
  auto sd = ReadTorchCheckpoint(File("runs_command.pth"));
  EXPECT_EQ(sd.status().code(), absl::StatusCode::kInvalidArgument) << sd.status();
  EXPECT_NE(sd.status().message().find("calls posix.system"), std::string::npos) << sd.status();
  EXPECT_FALSE(std::filesystem::exists(File("ran")));
}

TEST_F(TorchCheckpointTest, RefusesWhatIsNotAStateDictSayingWhat) {
  struct Case {
    const char* file;
    absl::StatusCode code;
    const char* says;
  };
  for (const Case& c : {
           Case{"legacy.pth", absl::StatusCode::kInvalidArgument, "legacy format"},
           Case{"list.pth", absl::StatusCode::kInvalidArgument, "not a state dict"},
           Case{"not_tensor.pth", absl::StatusCode::kInvalidArgument, "\"lr\" is a float"},
           Case{"int_key.pth", absl::StatusCode::kInvalidArgument, "key of type int"},
           Case{"empty.pth", absl::StatusCode::kInvalidArgument, "empty state dict"},
           Case{"truncated.pth", absl::StatusCode::kDataLoss, "cannot be read"},
           Case{"missing.pth", absl::StatusCode::kNotFound, "does not exist"},
       }) {
    auto sd = ReadTorchCheckpoint(File(c.file));
    EXPECT_EQ(sd.status().code(), c.code) << c.file << ": " << sd.status();
    EXPECT_NE(sd.status().message().find(c.says), std::string::npos) << sd.status();
    EXPECT_NE(sd.status().message().find(c.file), std::string::npos) << sd.status();
  }
  // Not a zip at all: a safetensors file under a .pth name.
  const std::string fake = File("fake.pth");
  ASSERT_TRUE(WriteSafetensors(fake, {{"w", Arange(2)}}).ok());
  auto sd = ReadTorchCheckpoint(fake);
  EXPECT_EQ(sd.status().code(), absl::StatusCode::kDataLoss) << sd.status();
  EXPECT_NE(sd.status().message().find("not a torch.save checkpoint"), std::string::npos);
}

TEST_F(TorchCheckpointTest, ReadWeightsFindsACheckpointByStemOrAsTheFoldersOnlyWeights) {
  TempDir folder;
  std::filesystem::copy_file(File("state_dict.pth"), folder.File("Wan2.1_VAE.pth"));
  auto by_stem = ReadWeights(folder.path(), "Wan2.1_VAE", torch::kFloat);
  ASSERT_TRUE(by_stem.ok()) << by_stem.status();
  EXPECT_EQ(by_stem->at("blocks.0.bias").scalar_type(), torch::kFloat);
  auto only = ReadWeights(folder.path(), "");
  ASSERT_TRUE(only.ok()) << only.status();
  EXPECT_EQ(only->size(), 10u);
  // safetensors of the same stem win (what a conversion writes next to the download).
  ASSERT_TRUE(WriteSafetensors(folder.File("Wan2.1_VAE.safetensors"), {{"w", Arange(2)}}).ok());
  auto preferred = ReadWeights(folder.path(), "Wan2.1_VAE");
  ASSERT_TRUE(preferred.ok()) << preferred.status();
  EXPECT_EQ(preferred->size(), 1u);
  // Two checkpoints and no safetensors: ambiguous without a stem.
  TempDir two;
  std::filesystem::copy_file(File("state_dict.pth"), two.File("a.pth"));
  std::filesystem::copy_file(File("wrapped.pt"), two.File("b.pt"));
  auto ambiguous = ReadWeights(two.path(), "");
  EXPECT_EQ(ambiguous.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(ambiguous.status().message().find("a.pth, b.pt"), std::string::npos)
      << ambiguous.status();
  auto none = ReadWeights(two.path(), "c");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("c.pth"), std::string::npos) << none.status();
}

// Hand-made pickles through the archive-free entry point.
using namespace std::string_literals;
std::string Unicode(const std::string& text) {
  std::string out = "X";
  const uint32_t n = text.size();
  out.append(reinterpret_cast<const char*>(&n), 4);  // little-endian on every supported machine
  return out + text;
}

// {"w": float tensor of `size` elements, stride `stride`, over storage `key` declared with `numel`
// elements}.
std::string OneTensorPickle(int size, int numel, int stride = 1, const std::string& key = "0") {
  return std::string("\x80\x02}(") + Unicode("w") + "ctorch._utils\n_rebuild_tensor_v2\n(" + "(" +
         Unicode("storage") + "ctorch\nFloatStorage\n" + Unicode(key) + Unicode("cpu") + "K" +
         static_cast<char>(numel) + "tQ" + "K\x00"s + "K" + static_cast<char>(size) + "\x85" + "K" +
         static_cast<char>(stride) + "\x85" + "\x89" + "ccollections\nOrderedDict\n)R" + "tRu.";
}

absl::StatusOr<torch::Tensor> EightBytes(const std::string& name) {
  if (name != "data/0") return absl::DataLossError("no record " + name);
  return torch::zeros({8}, torch::kUInt8);
}

TEST(TorchStateDictPickleTest, ChecksEveryTensorAgainstItsStorage) {
  auto ok = ParseTorchStateDict("ok", OneTensorPickle(2, 2), EightBytes);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(torch::equal(ok->at("w"), torch::zeros({2})));
  auto past = ParseTorchStateDict("past", OneTensorPickle(3, 2), EightBytes);
  EXPECT_EQ(past.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(past.status().message().find("past the end of its storage"), std::string::npos)
      << past.status();
  auto mismatch = ParseTorchStateDict("mismatch", OneTensorPickle(2, 4), EightBytes);
  EXPECT_EQ(mismatch.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(mismatch.status().message().find("holds 8 bytes, not 4 elements"), std::string::npos)
      << mismatch.status();
  auto missing = ParseTorchStateDict("missing", OneTensorPickle(2, 2),
                                     [](const std::string& name) -> absl::StatusOr<torch::Tensor> {
                                       return absl::DataLossError("no record " + name);
                                     });
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(missing.status().message().find("no record data/0"), std::string::npos);
  // An expanded view (stride 0) would materialise more elements than its storage holds.
  auto expanded = ParseTorchStateDict("expanded", OneTensorPickle(200, 2, 0), EightBytes);
  EXPECT_EQ(expanded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(expanded.status().message().find("expanded view"), std::string::npos)
      << expanded.status();
  // Only decimal keys name records: "0\0a" would open record 0 again under another name.
  auto alias = ParseTorchStateDict("alias", OneTensorPickle(2, 2, 1, "0\0a"s), EightBytes);
  EXPECT_EQ(alias.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(alias.status().message().find("not a decimal record number"), std::string::npos)
      << alias.status();
  // Cut anywhere, the pickle is an error, never a crash.
  const std::string whole = OneTensorPickle(2, 2);
  for (size_t n = 0; n + 1 < whole.size(); ++n) {
    EXPECT_FALSE(ParseTorchStateDict("cut", whole.substr(0, n), EightBytes).ok()) << n;
  }
}

TEST(TorchStateDictPickleTest, AMillionNestedListsAreRefusedWithoutRecursion) {
  constexpr int kDepth = 1000000;
  const std::string pickle =
      "\x80\x02" + std::string(kDepth, ']') + std::string(kDepth - 1, 'a') + ".";
  auto sd = ParseTorchStateDict("deep", pickle, EightBytes);
  EXPECT_EQ(sd.status().code(), absl::StatusCode::kInvalidArgument) << sd.status();
  EXPECT_NE(sd.status().message().find("holds a list, not a state dict"), std::string::npos);
  // A list that holds itself (through the memo) is freed too; ASan would report the leak.
  auto cycle = ParseTorchStateDict("cycle",
                                   "\x80\x02]q\x00h\x00"
                                   "a."s,
                                   EightBytes);
  EXPECT_EQ(cycle.status().code(), absl::StatusCode::kInvalidArgument) << cycle.status();
}

}  // namespace
}  // namespace linvideo::core::io

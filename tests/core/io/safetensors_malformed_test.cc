// Hostile and corrupt safetensors files: every one must be rejected with a clear error, never a
// crash or a huge allocation.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>

#include "core/io/safetensors.h"
#include "tests/core/io/io_test_util.h"

namespace linvideo::core::io {
namespace {

using testing::Craft;
using testing::LengthPrefix;
using testing::ReadBytes;
using testing::TempDir;
using testing::WriteBytes;

struct Case {
  const char* label;
  std::string header;
  size_t data_bytes;
  absl::StatusCode code;
  const char* needle;  // must appear in the message
};

std::string Entry(const std::string& name, const std::string& body) {
  return "\"" + name + "\":{" + body + "}";
}

TEST(SafetensorsMalformedTest, EveryHeaderProblemIsReported) {
  using C = absl::StatusCode;
  const std::string ok_a = Entry("a", R"("dtype":"F32","shape":[2],"data_offsets":[0,8])");
  const std::vector<Case> cases = {
      {"not json", "{\"a\":", 8, C::kInvalidArgument, "invalid JSON"},
      {"trailing garbage", "{} x", 0, C::kInvalidArgument, "invalid JSON"},
      {"nul in header", std::string("{}\0", 3), 0, C::kInvalidArgument, "invalid JSON"},
      {"array header", "[1,2]", 0, C::kInvalidArgument, "must be a JSON object"},
      {"string header", "\"x\"", 0, C::kInvalidArgument, "must be a JSON object"},
      {"entry not object", R"({"a":5})", 0, C::kInvalidArgument, "\"a\": entry must be an object"},
      {"missing dtype", "{" + Entry("a", R"("shape":[2],"data_offsets":[0,8])") + "}", 8,
       C::kInvalidArgument, "\"a\": missing \"dtype\""},
      {"missing shape", "{" + Entry("a", R"("dtype":"F32","data_offsets":[0,8])") + "}", 8,
       C::kInvalidArgument, "missing \"shape\""},
      {"missing offsets", "{" + Entry("a", R"("dtype":"F32","shape":[2])") + "}", 8,
       C::kInvalidArgument, "missing \"data_offsets\""},
      {"dtype not string", "{" + Entry("a", R"("dtype":1,"shape":[2],"data_offsets":[0,8])") + "}",
       8, C::kInvalidArgument, "\"dtype\" must be a string"},
      {"unknown dtype",
       "{" + Entry("a", R"("dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2])") + "}", 2,
       C::kInvalidArgument, "unsupported dtype \"F8_E4M3\""},
      {"lowercase dtype",
       "{" + Entry("a", R"("dtype":"f32","shape":[2],"data_offsets":[0,8])") + "}", 8,
       C::kInvalidArgument, "unsupported dtype"},
      {"unknown field",
       "{" + Entry("a", R"("dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1)") + "}", 8,
       C::kInvalidArgument, "unknown field \"x\""},
      {"shape not array", "{" + Entry("a", R"("dtype":"F32","shape":2,"data_offsets":[0,8])") + "}",
       8, C::kInvalidArgument, "\"shape\" must be an array"},
      {"negative dim", "{" + Entry("a", R"("dtype":"F32","shape":[-2],"data_offsets":[0,8])") + "}",
       8, C::kInvalidArgument, "non-negative integers"},
      {"float dim", "{" + Entry("a", R"("dtype":"F32","shape":[2.0],"data_offsets":[0,8])") + "}",
       8, C::kInvalidArgument, "non-negative integers"},
      {"string dim", "{" + Entry("a", R"("dtype":"F32","shape":["2"],"data_offsets":[0,8])") + "}",
       8, C::kInvalidArgument, "non-negative integers"},
      {"dim beyond int64",
       "{" + Entry("a", R"("dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,8])") +
           "}",
       8, C::kInvalidArgument, "below 2^63"},
      {"numel overflow",
       "{" + Entry("a", R"("dtype":"U8","shape":[4294967296,4294967296,4],"data_offsets":[0,8])") +
           "}",
       8, C::kInvalidArgument, "more than 2^63 elements"},
      {"byte size overflow",
       "{" + Entry("a", R"("dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8])") +
           "}",
       8, C::kInvalidArgument, "overflows the byte size"},
      {"zero dim hides overflow? no: product with zero is fine",
       "{" + Entry("a", R"("dtype":"F32","shape":[0,4611686018427387904],"data_offsets":[0,0])") +
           "}",
       0, C::kOk, ""},
      {"rank too high",
       "{" +
           Entry(
               "a",
               R"("dtype":"U8","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,1])") +
           "}",
       1, C::kInvalidArgument, "rank 33"},
      {"offsets not array",
       "{" + Entry("a", R"("dtype":"F32","shape":[2],"data_offsets":"0-8")") + "}", 8,
       C::kInvalidArgument, "must be [begin, end]"},
      {"three offsets",
       "{" + Entry("a", R"("dtype":"F32","shape":[2],"data_offsets":[0,8,9])") + "}", 9,
       C::kInvalidArgument, "must be [begin, end]"},
      {"negative offset",
       "{" + Entry("a", R"("dtype":"F32","shape":[2],"data_offsets":[-8,0])") + "}", 8,
       C::kInvalidArgument, "non-negative integers"},
      {"begin after end",
       "{" + Entry("a", R"("dtype":"F32","shape":[0],"data_offsets":[8,0])") + "}", 8,
       C::kInvalidArgument, "begin > end"},
      {"end past data", "{" + ok_a + "}", 7, C::kDataLoss, "extend past the data section"},
      {"huge end",
       "{" +
           Entry(
               "a",
               R"("dtype":"F32","shape":[2],"data_offsets":[18446744073709551607,18446744073709551615])") +
           "}",
       8, C::kDataLoss, "extend past"},
      {"size mismatch", "{" + Entry("a", R"("dtype":"F32","shape":[3],"data_offsets":[0,8])") + "}",
       8, C::kInvalidArgument, "needs 12"},
      {"overlap",
       "{" + ok_a + "," + Entry("b", R"("dtype":"I32","shape":[1],"data_offsets":[4,8])") + "}", 8,
       C::kInvalidArgument, "overlap"},
      {"same range twice",
       "{" + ok_a + "," + Entry("b", R"("dtype":"F32","shape":[2],"data_offsets":[0,8])") + "}", 8,
       C::kInvalidArgument, "overlap"},
      {"duplicate name", "{" + ok_a + "," + ok_a + "}", 8, C::kInvalidArgument,
       "duplicate key \"a\""},
      {"duplicate field",
       "{" + Entry("a", R"("dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8])") + "}", 8,
       C::kInvalidArgument, "duplicate key \"dtype\""},
      {"empty name", "{" + Entry("", R"("dtype":"F32","shape":[2],"data_offsets":[0,8])") + "}", 8,
       C::kInvalidArgument, "empty tensor names"},
      {"metadata not object", "{\"__metadata__\":[1]," + ok_a + "}", 8, C::kInvalidArgument,
       "\"__metadata__\" must be an object"},
      {"metadata value not string", "{\"__metadata__\":{\"k\":1}," + ok_a + "}", 8,
       C::kInvalidArgument, "value of \"k\" must be a string"},
      {"deep nesting", "{\"__metadata__\":" + std::string(200, '[') + std::string(200, ']') + "}",
       0, C::kInvalidArgument, "nesting deeper"},
      {"valid with padding and metadata", "{\"__metadata__\":{\"format\":\"pt\"}," + ok_a + "}    ",
       8, C::kOk, ""},
  };
  TempDir dir;
  const std::string path = dir.File("bad.safetensors");
  for (const Case& c : cases) {
    WriteBytes(path, Craft(c.header, c.data_bytes));
    auto r = SafetensorsReader::Open(path);
    EXPECT_EQ(r.status().code(), c.code) << c.label << ": " << r.status();
    if (c.code == absl::StatusCode::kOk) continue;
    EXPECT_NE(r.status().message().find(c.needle), std::string::npos)
        << c.label << ": " << r.status();
    EXPECT_NE(r.status().message().find(path), std::string::npos) << c.label << ": " << r.status();
  }
}

TEST(SafetensorsMalformedTest, HeaderLengthProblems) {
  TempDir dir;
  const std::string path = dir.File("len.safetensors");
  WriteBytes(path, std::string("\x01\x02\x03", 3));
  EXPECT_EQ(SafetensorsReader::Open(path).status().code(), absl::StatusCode::kDataLoss);
  // 2^62-byte header: must be refused before any allocation.
  WriteBytes(path, LengthPrefix(uint64_t{1} << 62) + "{}");
  auto huge = SafetensorsReader::Open(path);
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument) << huge.status();
  EXPECT_NE(huge.status().message().find("exceeds the maximum"), std::string::npos);
  WriteBytes(path, LengthPrefix(~uint64_t{0}) + "{}");
  EXPECT_EQ(SafetensorsReader::Open(path).status().code(), absl::StatusCode::kInvalidArgument);
  // Under the cap but longer than the file.
  WriteBytes(path, LengthPrefix(1000) + "{}");
  auto longer = SafetensorsReader::Open(path);
  EXPECT_EQ(longer.status().code(), absl::StatusCode::kDataLoss) << longer.status();
  EXPECT_NE(longer.status().message().find("truncated"), std::string::npos);
  // Zero-length header is not JSON.
  WriteBytes(path, LengthPrefix(0));
  EXPECT_EQ(SafetensorsReader::Open(path).status().code(), absl::StatusCode::kInvalidArgument);
}

// Random bit flips, byte stores and truncations of a valid file: Open() and reading every tensor
// must return OK or an error, never crash, hang or read outside the file.
TEST(SafetensorsMalformedTest, RandomCorruptionNeverCrashes) {
  TempDir dir;
  const std::string good = dir.File("good.safetensors");
  TensorMap m;
  m["w"] = torch::randn({4, 3});
  m["h"] = torch::randn({5}).to(torch::kBFloat16);
  m["b"] = torch::tensor({true, false, true});
  m["i"] = torch::arange(6, torch::kInt64).reshape({2, 3});
  ASSERT_TRUE(WriteSafetensors(good, m, {{"k", "v"}}).ok());
  const std::string bytes = ReadBytes(good);
  size_t data_bytes = 0;
  for (const auto& [name, t] : m) data_bytes += t.numel() * t.element_size();
  const std::string path = dir.File("corrupt.safetensors");
  int opened = 0, rejected = 0;
  for (uint32_t seed = 0; seed < 200; ++seed) {
    std::mt19937 rng(seed);
    std::string b = bytes;
    const int mode = seed % 4;
    if (mode == 3) {
      b.resize(rng() % b.size());
    } else {
      const int edits = 1 + rng() % 8;
      for (int e = 0; e < edits; ++e) {
        // 0: the length prefix; 1: bit flips anywhere; 2: byte stores in the tensor data.
        size_t pos = rng() % b.size();
        if (mode == 0) pos = rng() % 8;
        if (mode == 2) pos = b.size() - 1 - rng() % data_bytes;
        if (mode == 1) {
          b[pos] ^= static_cast<char>(1u << (rng() % 8));
        } else {
          b[pos] = static_cast<char>(rng() % 256);
        }
      }
    }
    WriteBytes(path, b);
    auto r = SafetensorsReader::Open(path);
    if (!r.ok()) {
      ++rejected;
      EXPECT_FALSE(r.status().message().empty());
      continue;
    }
    ++opened;
    for (const TensorInfo& info : (*r)->tensors()) {
      auto t = (*r)->Get(info.name, torch::kFloat32);
      if (!t.ok()) continue;
      // Touch every byte (NaN from flipped bits is fine; a fault is not).
      (void)t->to(torch::kFloat64).nan_to_num().sum().item<double>();
    }
  }
  EXPECT_GT(rejected, 50);
  EXPECT_GT(opened, 40);  // edits of tensor data leave a valid file
  std::cout << "random corruption: " << opened << " opened, " << rejected << " rejected\n";
}

}  // namespace
}  // namespace linvideo::core::io

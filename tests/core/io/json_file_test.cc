#include "core/io/json_file.h"

#include <gtest/gtest.h>

#include "tests/core/io/io_test_util.h"

namespace linvideo::core::io {
namespace {

using testing::ReadBytes;
using testing::TempDir;
using testing::WriteBytes;

TEST(JsonFileTest, WritesPrettyAtomicallyAndReadsBack) {
  TempDir dir;
  nlohmann::json v = {{"dim", 1536}, {"name", "wan"}, {"list", {1, 2, 3}}};
  ASSERT_TRUE(WriteJsonFile(dir.File("c.json"), v).ok());
  const std::string text = ReadBytes(dir.File("c.json"));
  EXPECT_NE(text.find("\n  \"dim\": 1536"), std::string::npos) << text;
  EXPECT_EQ(text.back(), '\n');
  auto r = ReadJsonFile(dir.File("c.json"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, v);
  // Replacing keeps exactly one file.
  ASSERT_TRUE(WriteJsonFile(dir.File("c.json"), {{"dim", 5120}}).ok());
  EXPECT_EQ((*ReadJsonFile(dir.File("c.json")))["dim"], 5120);
  EXPECT_EQ(dir.List(), std::vector<std::string>{"c.json"});
}

TEST(JsonFileTest, ErrorsNameTheProblem) {
  TempDir dir;
  auto missing = ReadJsonFile(dir.File("none.json"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("none.json"), std::string::npos);

  WriteBytes(dir.File("bad.json"), "{\n  \"a\": 1,\n  \"b\": ]\n}");
  auto bad = ReadJsonFile(dir.File("bad.json"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("line 3 column"), std::string::npos) << bad.status();

  WriteBytes(dir.File("dup.json"), R"({"a": 1, "b": {"x": 1, "x": 2}})");
  auto dup = ReadJsonFile(dir.File("dup.json"));
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(dup.status().message().find("duplicate key \"x\""), std::string::npos);
  // The same key in sibling objects is fine.
  EXPECT_TRUE(ParseJson(R"({"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 1}, {"x": 2}]})", "t").ok());

  auto deep = ParseJson(std::string(1000, '[') + std::string(1000, ']'), "deep");
  EXPECT_EQ(deep.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ParseJson(std::string(60, '[') + std::string(60, ']'), "ok").ok());
  EXPECT_FALSE(ParseJson(std::string("{}\0{}", 5), "nul").ok());
  EXPECT_EQ(ReadJsonFile(dir.path()).status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(WriteJsonFile(dir.File("u.json"), std::string("\xff\xfe")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(WriteJsonFile(dir.File("no/such/dir/x.json"), 1).ok());
  EXPECT_EQ(dir.List(), (std::vector<std::string>{"bad.json", "dup.json"}));
}

TEST(JsonFileTest, WriteFileAtomicReplacesBytes) {
  TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.File("f"), std::string("abc\0def", 7)).ok());
  EXPECT_EQ(ReadBytes(dir.File("f")), std::string("abc\0def", 7));
  ASSERT_TRUE(WriteFileAtomic(dir.File("f"), "").ok());
  EXPECT_EQ(ReadBytes(dir.File("f")), "");
  EXPECT_EQ(dir.List(), std::vector<std::string>{"f"});
  EXPECT_EQ(WriteFileAtomic(dir.path() + "/", "x").code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace linvideo::core::io

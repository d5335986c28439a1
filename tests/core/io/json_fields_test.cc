#include "core/io/json_fields.h"

#include <gtest/gtest.h>

namespace linvideo::core::io {
namespace {

TEST(JsonFieldsTest, AbsentOrNullKeepsDefaultPresentOverrides) {
  auto j = nlohmann::json::parse(R"({"a": 3, "b": null, "c": 2.5, "d": true, "e": "x",
                                    "f": [1, 2], "g": [0.5, 1]})");
  int64_t a = 0, b = 7, missing = 9;
  double c = 0;
  bool d = false;
  std::string e;
  std::vector<int64_t> f;
  std::vector<double> g;
  ASSERT_TRUE(ReadJsonField(j, "a", "cfg", &a).ok());
  ASSERT_TRUE(ReadJsonField(j, "b", "cfg", &b).ok());
  ASSERT_TRUE(ReadJsonField(j, "zz", "cfg", &missing).ok());
  ASSERT_TRUE(ReadJsonField(j, "c", "cfg", &c).ok());
  ASSERT_TRUE(ReadJsonField(j, "d", "cfg", &d).ok());
  ASSERT_TRUE(ReadJsonField(j, "e", "cfg", &e).ok());
  ASSERT_TRUE(ReadJsonField(j, "f", "cfg", &f).ok());
  ASSERT_TRUE(ReadJsonField(j, "g", "cfg", &g).ok());
  EXPECT_EQ(a, 3);
  EXPECT_EQ(b, 7);
  EXPECT_EQ(missing, 9);
  EXPECT_DOUBLE_EQ(c, 2.5);
  EXPECT_TRUE(d);
  EXPECT_EQ(e, "x");
  EXPECT_EQ(f, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(g, (std::vector<double>{0.5, 1}));
}

TEST(JsonFieldsTest, WrongTypesAndMissingRequiredNameTheKey) {
  auto j = nlohmann::json::parse(R"({"a": 2.5, "l": [1, "x"], "s": 3})");
  int64_t a = 0;
  std::vector<int64_t> l;
  std::string s;
  auto sa = ReadJsonField(j, "a", "DiT config", &a);
  EXPECT_EQ(sa.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sa.message(), "DiT config: field 'a' must be an integer, got 2.5");
  EXPECT_NE(ReadJsonField(j, "l", "cfg", &l).message().find("list of integers"), std::string::npos);
  EXPECT_FALSE(ReadJsonField(j, "s", "cfg", &s).ok());
  EXPECT_TRUE(l.empty());  // untouched on error
  EXPECT_EQ(RequireJsonField(j, "d_ff", "T5 config").message(),
            "T5 config: missing required field 'd_ff'");
  EXPECT_TRUE(RequireJsonField(j, "a", "T5 config").ok());
}

}  // namespace
}  // namespace linvideo::core::io

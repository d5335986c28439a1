// server/config.h: a --config file is applied or refused with a message, never thrown on (the
// shapes here are what server_config_fuzz found or could find), and nesting is bounded.
#include "server/config.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace linvideo::server {
namespace {

absl::Status Apply(const std::string& text, ServerConfig* out = nullptr) {
  ServerConfig c;
  absl::Status s = ApplyConfigText(text, "test.json", c);
  if (out != nullptr) *out = c;
  return s;
}

TEST(ServerConfigTest, ModelsAsObjectOrList) {
  ServerConfig c;
  ASSERT_TRUE(Apply(R"({"models": {"default": "models/default"}, "threads": 2})", &c).ok());
  ASSERT_EQ(c.models.size(), 1u);
  EXPECT_EQ(c.models[0].name, "default");
  EXPECT_EQ(c.models[0].path, "models/default");
  EXPECT_EQ(c.threads, 2);
  ASSERT_TRUE(
      Apply(R"({"models": [{"name": "a", "path": "x"}, {"name": "b", "path": "y"}]})", &c).ok());
  ASSERT_EQ(c.models.size(), 2u);
  EXPECT_EQ(c.models[1].path, "y");
}

TEST(ServerConfigTest, RemembersWhichOptionsWereGiven) {
  ServerConfig c;
  ASSERT_TRUE(Apply(R"({"scheduler": {"max_batch": 2}, "threads": 2})", &c).ok());
  EXPECT_EQ(c.given, (std::set<std::string>{"scheduler.max_batch", "threads"}));
  auto parsed = ParseServerConfig({"--scheduler.token_budget=100", "--device=cpu"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.given, (std::set<std::string>{"device", "scheduler.token_budget"}));
  EXPECT_FALSE(ParseServerConfig({"--scheduler.max_batch=oops"}).ok());
}

TEST(ServerConfigTest, EncodeThreadsAreAutoOrOneToSixtyFour) {
  for (const char* bad : {"-1", "65"}) {
    auto parsed = ParseServerConfig(
        {"--model=m=models/default", "--limits.encode_threads=" + std::string(bad)});
    ASSERT_TRUE(parsed.ok()) << bad;
    absl::Status s = parsed->config.Validate();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("limits.encode_threads: allowed 0 (auto) or 1..64"),
              std::string::npos)
        << s;
  }
  auto good = ParseServerConfig({"--model=m=models/default", "--limits.encode_threads=4"});
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->config.limits.encode_threads, 4);
  EXPECT_TRUE(good->config.Validate().ok());
}

TEST(ServerConfigTest, ModelNamesAreRefusedWithWhatIsAllowed) {
  int validated = 0;
  for (const std::string& bad :
       std::vector<std::string>{"", "a/b", "x y", "..", "m@v1", std::string(65, 'a')}) {
    auto parsed = ParseServerConfig({"--model=" + bad + "=models/default"});
    if (!parsed.ok()) continue;  // refused while parsing (e.g. the empty name)
    ++validated;
    absl::Status s = parsed->config.Validate();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("[A-Za-z0-9._-]"), std::string::npos) << s;
  }
  EXPECT_GE(validated, 5);  // all but the empty name reach Validate
  auto good = ParseServerConfig({"--model=default-4step_v1.2=models/default"});
  ASSERT_TRUE(good.ok());
  EXPECT_TRUE(good->config.Validate().ok());
}

TEST(ServerConfigTest, MalformedModelsAreRefusedNotThrown) {
  for (const char* bad : {R"({"models": {"default": 3}})", R"({"models": [{"name": "a"}]})",
                          R"({"models": [{"name": 1, "path": "x"}]})", R"({"models": [7]})",
                          R"({"models": "models/default"})"}) {
    absl::Status s = Apply(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("'models' must be"), std::string::npos) << s;
    EXPECT_NE(s.message().find("test.json"), std::string::npos) << s;
  }
}

TEST(ServerConfigTest, NotAnObjectUnknownOptionsAndDeepNesting) {
  EXPECT_EQ(Apply("[1, 2]").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Apply("{\"threads\": ").code(), absl::StatusCode::kInvalidArgument);
  absl::Status unknown = Apply(R"({"scheduler": {"nope": 1}})");
  EXPECT_NE(unknown.message().find("unknown option 'scheduler.nope'"), std::string::npos)
      << unknown;
  std::string deep;
  for (int i = 0; i < 10000; ++i) deep += "{\"a\": ";
  deep += "1" + std::string(10000, '}');
  absl::Status nested = Apply(deep);
  EXPECT_EQ(nested.code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace linvideo::server

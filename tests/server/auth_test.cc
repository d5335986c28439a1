// server/bearer_token.h and the listen rule of server/config.h: the token is compared in
// constant time, re-read when its file changes (a bad rewrite keeps the old one), and a server
// that listens beyond loopback refuses to start without one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "server/bearer_token.h"
#include "server/config.h"

namespace linvideo::server {
namespace {

namespace fs = std::filesystem;

absl::StatusCode Code(const BearerToken& t, const char* header) {
  if (header == nullptr) return t.Check(nullptr).code();
  const std::string_view h(header);
  return t.Check(&h).code();
}

TEST(ConstantTimeEqualsTest, EqualOnlyForTheSameBytes) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret2"));
  EXPECT_FALSE(ConstantTimeEquals("secret", ""));
  EXPECT_FALSE(ConstantTimeEquals(std::string_view("a\0", 2), "a"));
}

TEST(BearerTokenTest, NoTokenAllowsEverything) {
  BearerToken none;
  EXPECT_FALSE(none.enabled());
  EXPECT_EQ(Code(none, nullptr), absl::StatusCode::kOk);
  EXPECT_EQ(Code(none, "Bearer x"), absl::StatusCode::kOk);
}

TEST(BearerTokenTest, RotatesWhenTheFileChangesAndKeepsTheOldOneOnABadRewrite) {
  const fs::path file =
      fs::path(::testing::TempDir()) / ("auth_test_token_" + std::to_string(getpid()));
  std::ofstream(file) << "  first-token\n";
  auto t = BearerToken::FromFile(file.string(), absl::ZeroDuration());
  ASSERT_TRUE(t.ok()) << t.status();
  const BearerToken& token = **t;
  EXPECT_EQ(Code(token, nullptr), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Code(token, "Bearer first-token"), absl::StatusCode::kOk);
  EXPECT_EQ(Code(token, "Bearer first-toke"), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Code(token, "first-token"), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Code(token, "Bearer "), absl::StatusCode::kPermissionDenied);
  // Rotation: a new file (written beside it and renamed over, as an operator would) takes over.
  const fs::path next = file.string() + ".new";
  std::ofstream(next) << "second-token";
  fs::rename(next, file);
  EXPECT_EQ(Code(token, "Bearer second-token"), absl::StatusCode::kOk);
  EXPECT_EQ(Code(token, "Bearer first-token"), absl::StatusCode::kPermissionDenied);
  // Emptied (a half-written rewrite): the token in force stays.
  std::ofstream(next) << "\n";
  fs::rename(next, file);
  EXPECT_EQ(Code(token, "Bearer second-token"), absl::StatusCode::kOk);
  EXPECT_EQ(Code(token, "Bearer "), absl::StatusCode::kPermissionDenied);
  // Gone for a moment: the same.
  fs::remove(file);
  EXPECT_EQ(Code(token, "Bearer second-token"), absl::StatusCode::kOk);
  EXPECT_EQ(BearerToken::FromFile(file.string()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ListenRuleTest, BeyondLoopbackNeedsAToken) {
  for (const char* a : {"127.0.0.1:50051", "127.0.0.2:1", "[::1]:50051", "localhost:0",
                        "unix:/tmp/linvideo.sock"}) {
    EXPECT_TRUE(IsLoopbackListen(a)) << a;
  }
  for (const char* a : {"0.0.0.0:50051", "[::]:50051", ":50051", "10.0.0.5:50051",
                        "example.com:50051", "128.0.0.1:1"}) {
    EXPECT_FALSE(IsLoopbackListen(a)) << a;
  }
  auto validate = [](std::vector<std::string> args) {
    absl::StatusOr<ParsedConfig> parsed = ParseServerConfig(args);
    return parsed.ok() ? parsed->config.Validate() : parsed.status();
  };
  const absl::Status open = validate({"--listen=0.0.0.0:50051", "--model=tiny=x"});
  EXPECT_EQ(open.code(), absl::StatusCode::kInvalidArgument) << open;
  EXPECT_NE(open.message().find("auth.admin_token_file"), std::string::npos) << open;
  EXPECT_NE(open.message().find("loopback"), std::string::npos) << open;
  const absl::Status local = validate({"--listen=127.0.0.1:50051", "--model=tiny=x"});
  EXPECT_TRUE(local.ok()) << local;
  const absl::Status with_token =
      validate({"--listen=0.0.0.0:50051", "--model=tiny=x", "--auth.admin_token_file=/some/file"});
  EXPECT_TRUE(with_token.ok()) << with_token;
}

}  // namespace
}  // namespace linvideo::server

// A generic gRPC client that only uses server reflection (tests/e2e/reflection_client.py: grpcio +
// protobuf descriptors, no linvideo stubs) lists the real linvideo-server's services, describes
// them and calls unary and server-streaming methods. Skips when python3 lacks grpcio.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/e2e/server_harness.h"

namespace linvideo::e2e {
namespace {

TEST(ReflectionTest, GenericClientListsDescribesAndCallsServices) {
  if (Shell("/usr/bin/python3 -c 'import grpc, google.protobuf'").rc != 0) {
    GTEST_SKIP() << "python3-grpcio / python3-protobuf not installed";
  }
  const std::string root = ::testing::TempDir() + "/reflection_" + std::to_string(getpid());
  Shell("rm -rf " + root + " && mkdir -p " + root + "/ckpt/a");
  std::ofstream(root + "/ckpt/a/fake_model.json") << R"({"step_ms": 5, "item_ms": 1})";
  ServerProcess server;
  ASSERT_TRUE(server.Start(root, {"--executor=fake", "--model=tiny=" + root + "/ckpt/a"}))
      << ReadFile(root + "/server.log");
  const std::string client =
      "/usr/bin/python3 " + std::string(LINVIDEO_SOURCE_DIR) +
      "/tests/e2e/reflection_client.py 127.0.0.1:" + std::to_string(server.port()) + " ";

  CmdResult r = Shell(client + "list");
  ASSERT_EQ(r.rc, 0) << r.out;
  for (const char* service :
       {"linvideo.v1.Generation", "linvideo.v1.Admin", "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection"}) {
    EXPECT_NE(r.out.find(service), std::string::npos) << service << "\n" << r.out;
  }

  r = Shell(client + "describe linvideo.v1.Admin");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("LoadCheckpoint(linvideo.v1.LoadCheckpointRequest)"), std::string::npos)
      << r.out;

  r = Shell(client + "call linvideo.v1.Generation/ListModels ''");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("name: \"tiny\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("is_default: true"), std::string::npos) << r.out;

  // Server streaming with a request built from the reflected descriptor.
  r = Shell(client +
            "call linvideo.v1.Generation/Generate 'prompt: \"a red ball\" width: 32 height: 32 "
            "frames: 5 steps: 3 seed: 4'");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("total_steps: 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mime_type: \"video/mp4\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("completed {"), std::string::npos) << r.out;

  // Errors come back as gRPC status codes (INVALID_ARGUMENT = 3) with the server's message.
  r = Shell(client + "call linvideo.v1.Generation/Generate 'prompt: \"x\" width: 33'");
  EXPECT_EQ(r.rc, 3) << r.out;
  EXPECT_NE(r.out.find("multiple of 16"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace linvideo::e2e

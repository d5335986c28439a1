// The Python example client (client/python/example.py, stubs generated at run time with Debian's
// python3-grpc-tools) against the real server. Skips when python3 lacks grpc/grpc_tools.
#include <gtest/gtest.h>

#include <fstream>

#include "media/video_decoder.h"
#include "tests/e2e/server_harness.h"

namespace linvideo::e2e {
namespace {

TEST(PythonClientTest, ExampleGeneratesDecodableMp4) {
  if (Shell("/usr/bin/python3 -c 'import grpc, grpc_tools'").rc != 0) {
    GTEST_SKIP() << "python3-grpcio / python3-grpc-tools not installed";
  }
  const std::string root = ::testing::TempDir() + "/python_client_" + std::to_string(getpid());
  Shell("rm -rf " + root + " && mkdir -p " + root + "/m");
  std::ofstream(root + "/m/fake_model.json") << R"({"step_ms": 5})";
  ServerProcess server;
  ASSERT_TRUE(server.Start(root, {"--executor=fake", "--model=tiny=" + root + "/m"}));
  CmdResult r =
      Shell("/usr/bin/python3 " + std::string(LINVIDEO_SOURCE_DIR) +
            "/client/python/example.py --server=127.0.0.1:" + std::to_string(server.port()) +
            " --steps=3 --timeout=60 --out=" + root + "/py.mp4");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("model tiny v1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("step 3/3"), std::string::npos) << r.out;
  auto video = media::DecodeVideo(ReadFile(root + "/py.mp4"));
  ASSERT_TRUE(video.ok()) << video.status();
  EXPECT_EQ(video->frame_count, 5);
}

}  // namespace
}  // namespace linvideo::e2e

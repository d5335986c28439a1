// The metrics endpoint (StartExposer) in a process whose static TLS is larger than the stack
// civetweb asks for its threads (100 KiB): as a server linked against a CUDA LibTorch from
// PyTorch's pip wheels, where the exposer failed to start (session 30, H100). And civetweb's own
// reason in the error when it cannot start.

#include <arpa/inet.h>
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <climits>
#include <string>

#include "server/metrics.h"
#include "server/thread_stack.h"
#include "tests/e2e/server_harness.h"

// 256 KiB of static TLS in this executable (an executable's TLS is always static): glibc refuses a
// thread stack of 100 KiB that must also hold it.
thread_local char g_tls_ballast[256 * 1024];

namespace linvideo::server {
namespace {

TEST(MetricsExposer, ServesWhenStaticTlsIsLargerThanCivetwebsThreadStack) {
  g_tls_ballast[0] = 1;
  EXPECT_GE(StaticTlsBytes(), 256 * 1024);
  Metrics metrics;
  metrics.SetCheckpoint("tiny", 3, "/models/tiny");
  auto exposer = StartExposer("127.0.0.1:0", metrics);
  ASSERT_TRUE(exposer.ok()) << exposer.status();
  ASSERT_FALSE((*exposer)->GetListeningPorts().empty());
  const std::string body = e2e::HttpGet((*exposer)->GetListeningPorts()[0], "/metrics");
  EXPECT_NE(body.find("linvideo_checkpoint_info{"), std::string::npos) << body.substr(0, 400);
}

TEST(MetricsExposer, TheStackSizeInterposerIsTheOneLibrariesFind) {
  // What civetweb's call resolves to: this executable's definition, not libc's.
  EXPECT_EQ(dlsym(RTLD_DEFAULT, "pthread_attr_setstacksize"),
            reinterpret_cast<void*>(&pthread_attr_setstacksize));
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, 100 * 1024), 0);
  size_t size = 0;
  ASSERT_EQ(pthread_attr_getstacksize(&attr, &size), 0);
  EXPECT_EQ(static_cast<int64_t>(size), 100 * 1024 + StaticTlsBytes() + PTHREAD_STACK_MIN);
  pthread_attr_destroy(&attr);
}

TEST(MetricsExposer, ARefusedStartSaysWhatCivetwebSaid) {
  // A port that is taken: listening, without SO_REUSEADDR on civetweb's side mattering.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  Metrics metrics;
  auto exposer = StartExposer(address, metrics);
  close(fd);
  ASSERT_FALSE(exposer.ok());
  EXPECT_EQ(exposer.status().code(), absl::StatusCode::kUnavailable);
  const std::string message(exposer.status().message());
  EXPECT_NE(message.find("cannot serve metrics on " + address), std::string::npos) << message;
  EXPECT_NE(message.find("(civetweb: "), std::string::npos) << message;
  EXPECT_NE(message.find("bind"), std::string::npos) << message;
}

}  // namespace
}  // namespace linvideo::server

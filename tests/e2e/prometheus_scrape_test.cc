// A real Prometheus server (Debian's `prometheus` package) scrapes linvideo-server's /metrics with
// deploy/prometheus's rules loaded: the target is up and the server's series are queryable.
// Skips when /usr/bin/prometheus is not installed.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/e2e/server_harness.h"

namespace linvideo::e2e {
namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST(PrometheusScrapeTest, RealPrometheusScrapesMetrics) {
  if (Shell("test -x /usr/bin/prometheus").rc != 0) {
    GTEST_SKIP() << "Debian's prometheus package is not installed";
  }
  const std::string root = ::testing::TempDir() + "/prometheus_" + std::to_string(getpid());
  Shell("rm -rf " + root + " && mkdir -p " + root + "/ckpt/a && cp " +
        std::string(LINVIDEO_SOURCE_DIR) + "/deploy/prometheus/linvideo-rules.yml " + root);
  std::ofstream(root + "/ckpt/a/fake_model.json") << R"({"step_ms": 2, "item_ms": 1})";
  ServerProcess server;
  ASSERT_TRUE(server.Start(root, {"--executor=fake", "--model=tiny=" + root + "/ckpt/a"}))
      << ReadFile(root + "/server.log");
  ASSERT_EQ(server.Cli("bench --clients=2 --requests=4 --steps=2").rc, 0);
  const std::string metrics_port = ReadFile(root + "/mport");
  std::ofstream(root + "/prom.yml") << "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                                       "rule_files: [linvideo-rules.yml]\n"
                                       "scrape_configs:\n"
                                       "  - job_name: linvideo\n"
                                       "    static_configs: [{targets: [\"127.0.0.1:"
                                    << std::atoi(metrics_port.c_str()) << "\"]}]\n";
  const int port = FreePort();
  const std::string prom = "/usr/bin/prometheus --config.file=" + root +
                           "/prom.yml --storage.tsdb.path=" + root +
                           "/tsdb --web.listen-address=127.0.0.1:" + std::to_string(port);
  // Run Prometheus until its first scrape is queryable (polled each second, at most 60 s: a
  // loaded CI machine can take longer than the scrape interval to start it), query its HTTP API,
  // then stop it.
  const std::string q = "curl -s --max-time 5 --get --data-urlencode ";
  const std::string api = " 127.0.0.1:" + std::to_string(port) + "/api/v1/";
  CmdResult r = Shell(prom + " > " + root + "/prom.log 2>&1 & P=$!; for i in $(seq 60); do " +
                      "sleep 1; " + q + "'query=linvideo_serving'" + api +
                      "query | grep -q '\"value\":\\[' && break; done; sleep 2; curl -s" + api +
                      "targets; echo; " + q + "'query=linvideo_serving'" + api + "query; echo; " +
                      q + "'query=sum(linvideo_requests_total)'" + api + "query; echo; curl -s" +
                      api + "rules; echo; kill $P; wait $P");
  EXPECT_NE(r.out.find("\"health\":\"up\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"__name__\":\"linvideo_serving\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"value\":["), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("linvideo:mean_batch_size"), std::string::npos) << r.out;  // rules loaded
  EXPECT_EQ(r.out.find("\"health\":\"err"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace linvideo::e2e

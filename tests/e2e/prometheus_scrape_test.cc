// A real Prometheus server (Debian's `prometheus` package) scrapes linvideo-server's /metrics with
// deploy/prometheus's rules loaded: the target is up and the server's series are queryable.
// Skips when /usr/bin/prometheus is not installed.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
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

// Every query of the Grafana dashboard is valid PromQL: they become recording rules of a scratch
// rules file that promtool checks (the dashboard must also be valid JSON with panels).
TEST(PrometheusRulesTest, EveryDashboardQueryIsValidPromql) {
  if (Shell("test -x /usr/bin/promtool").rc != 0) {
    GTEST_SKIP() << "Debian's prometheus package (promtool) is not installed";
  }
  const std::string dir = ::testing::TempDir() + "/dashboard_" + std::to_string(getpid());
  std::ofstream(dir + ".py")
      << "import json, sys\n"
         "d = json.load(open(sys.argv[1]))\n"
         "qs = [t['expr'] for p in d['panels'] for t in p['targets']]\n"
         "assert len(qs) >= 15, len(qs)\n"
         "print('groups:\\n- name: dashboard\\n  rules:')\n"
         "for i, q in enumerate(qs):\n"
         "    print('  - record: dashboard:q%d\\n    expr: %s' % (i, json.dumps(q)))\n";
  CmdResult made = Shell("/usr/bin/python3 " + dir + ".py " + std::string(LINVIDEO_SOURCE_DIR) +
                         "/deploy/grafana/linvideo-dashboard.json > " + dir + "-rules.yml");
  ASSERT_EQ(made.rc, 0) << made.out;
  CmdResult check = Shell("promtool check rules " + dir + "-rules.yml");
  EXPECT_EQ(check.rc, 0) << check.out << ReadFile(dir + "-rules.yml");
  EXPECT_NE(check.out.find("SUCCESS"), std::string::npos) << check.out;
}

// deploy/prometheus/linvideo-rules.yml is valid and its unit tests (linvideo-rules.test.yml: every
// rule firing where it should and quiet where it should not) pass under Debian's promtool.
TEST(PrometheusRulesTest, PromtoolChecksAndUnitTestsTheRules) {
  if (Shell("test -x /usr/bin/promtool").rc != 0) {
    GTEST_SKIP() << "Debian's prometheus package (promtool) is not installed";
  }
  const std::string dir = std::string(LINVIDEO_SOURCE_DIR) + "/deploy/prometheus";
  CmdResult check = Shell("cd " + dir + " && promtool check rules linvideo-rules.yml");
  EXPECT_EQ(check.rc, 0) << check.out;
  CmdResult test = Shell("cd " + dir + " && promtool test rules linvideo-rules.test.yml");
  EXPECT_EQ(test.rc, 0) << test.out;
  EXPECT_NE(test.out.find("SUCCESS"), std::string::npos) << test.out;
}

// Every metric the rules and the Grafana dashboard (deploy/grafana) use is one the server exports:
// a live scrape of a server with jobs and a state folder on has a "# TYPE" line for each. Counters
// the alerts watch with increase() exist at 0 from the start (swaps per model, job durations per
// kind and ended state): born at 1, the first failure would show no increase. The per-job progress
// gauge exists only while a job runs.
TEST(PrometheusRulesTest, EveryMetricTheRulesAndTheDashboardUseIsExported) {
  const std::string root = ::testing::TempDir() + "/rules_metrics_" + std::to_string(getpid());
  Shell("rm -rf " + root + " && mkdir -p " + root + "/ckpt/a " + root + "/jobs");
  std::ofstream(root + "/ckpt/a/fake_model.json") << R"({"step_ms": 2, "item_ms": 1})";
  std::ofstream(root + "/token") << "t\n";
  ServerProcess server;
  ASSERT_TRUE(server.Start(
      root, {"--executor=fake", "--model=tiny=" + root + "/ckpt/a",
             "--checkpoint_root=" + root + "/ckpt", "--jobs.root=" + root + "/jobs",
             "--state_dir=" + root + "/state", "--auth.admin_token_file=" + root + "/token"}))
      << ReadFile(root + "/server.log");
  ASSERT_EQ(server.Cli("bench --clients=2 --requests=4 --steps=2").rc, 0);
  const std::string exported = server.Metrics();
  const std::string src = LINVIDEO_SOURCE_DIR;
  const std::string rules = ReadFile(src + "/deploy/prometheus/linvideo-rules.yml") +
                            ReadFile(src + "/deploy/grafana/linvideo-dashboard.json");
  std::set<std::string> used;
  const std::regex name("linvideo_[a-z_]+");
  for (auto it = std::sregex_iterator(rules.begin(), rules.end(), name);
       it != std::sregex_iterator(); ++it) {
    std::string n = it->str();
    for (const char* suffix : {"_sum", "_count", "_bucket"}) {
      const std::string sfx = suffix;
      if (n.size() > sfx.size() && n.compare(n.size() - sfx.size(), sfx.size(), sfx) == 0) {
        n.resize(n.size() - sfx.size());
      }
    }
    used.insert(n);
  }
  EXPECT_GE(used.size(), 7u);
  for (const std::string& n : used) {
    // A running job's progress gauge exists only while a job runs (jobs_e2e_test runs real ones).
    if (n == "linvideo_job_progress") continue;
    EXPECT_NE(exported.find("# TYPE " + n + " "), std::string::npos)
        << n << " is used by the rules or the dashboard but not exported";
  }
}

}  // namespace
}  // namespace linvideo::e2e

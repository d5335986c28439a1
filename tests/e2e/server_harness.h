#pragma once
// Test harness for end-to-end tests: starts the real linvideo-server binary on loopback (ports
// picked by the server: --listen=127.0.0.1:0 + --port_file) and runs the real `linvideo` CLI.
// Header-only; used by tests/e2e/*_test.cc.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace linvideo::e2e {

inline std::string Bin(const std::string& rel) {
  return std::string(LINVIDEO_BINARY_DIR) + "/" + rel;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct CmdResult {
  int rc = -1;
  std::string out;  // stdout + stderr
};

inline CmdResult Shell(const std::string& cmd) {
  CmdResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Minimal HTTP/1.0 GET on 127.0.0.1:port; returns the body ("" on failure).
inline std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "";
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string resp;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) resp.append(buf, n);
  close(fd);
  const size_t body = resp.find("\r\n\r\n");
  return body == std::string::npos ? "" : resp.substr(body + 4);
}

class ServerProcess {
 public:
  // Starts linvideo-server with `args` (plus listen/port files) in `dir`; waits up to
  // `start_timeout_s` until it listens (real model folders load for seconds on a busy machine).
  bool Start(const std::string& dir, const std::vector<std::string>& args,
             double start_timeout_s = 15) {
    dir_ = dir;
    std::remove((dir + "/port").c_str());
    std::remove((dir + "/mport").c_str());
    std::vector<std::string> all = {Bin("server/linvideo-server"), "--listen=127.0.0.1:0",
                                    "--port_file=" + dir + "/port", "--metrics.listen=127.0.0.1:0",
                                    "--metrics.port_file=" + dir + "/mport"};
    all.insert(all.end(), args.begin(), args.end());
    pid_ = fork();
    if (pid_ == 0) {
      freopen((dir + "/server.log").c_str(), "a", stderr);
      setenv("LINVIDEO_LOG_QUIET", "1", 1);
      std::vector<char*> argv;
      for (auto& s : all) argv.push_back(s.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    for (int i = 0; i < start_timeout_s * 20; ++i) {
      port_ = std::atoi(ReadFile(dir + "/port").c_str());
      if (port_ > 0) break;
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) return pid_ = -1, false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    metrics_port_ = std::atoi(ReadFile(dir + "/mport").c_str());
    return port_ > 0;
  }
  // Waits up to `timeout_s` for exit; returns the exit code (-1 if still running / killed).
  int Wait(double timeout_s) {
    for (int i = 0; i < timeout_s * 20; ++i) {
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }
  void Terminate() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      if (Wait(15) == -1 && pid_ > 0) {
        kill(pid_, SIGKILL);
        Wait(5);
      }
    }
  }
  ~ServerProcess() { Terminate(); }

  // The CLI, pointed at this server: Cli("generate --prompt=x ...").
  CmdResult Cli(const std::string& args) const {
    return Shell(Bin("client/linvideo") + " --server=127.0.0.1:" + std::to_string(port_) + " " +
                 args);
  }
  std::string Metrics() const { return HttpGet(metrics_port_, "/metrics"); }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }

 private:
  std::string dir_;
  pid_t pid_ = -1;
  int port_ = 0, metrics_port_ = 0;
};

// Sum of every sample of `name` (exact metric name, any labels) in a Prometheus text exposition.
inline double MetricSum(const std::string& text, const std::string& name) {
  double sum = 0;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : ' ';
    if (next != ' ' && next != '{') continue;
    sum += std::atof(line.substr(line.rfind(' ') + 1).c_str());
  }
  return sum;
}

}  // namespace linvideo::e2e

#include "tools/train_launch.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace linvideo::tools {

namespace {

constexpr int kMaxProcesses = 64;

// A loopback port nothing listens on now (the kernel's pick for port 0); rank 0's TCP store binds
// it a moment later.
int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  close(fd);
  return ok ? ntohs(addr.sin_port) : -1;
}

int Usage(const std::string& why) {
  std::cerr << "linvideo-train launch: " << why
            << "\nusage: linvideo-train launch --nproc N [--master-port P] -- COMMAND [FLAGS...]"
               "\n  N in 1.."
            << kMaxProcesses
            << "; COMMAND one of vae, dit, convert, distill (the data-parallel stages)\n";
  return 2;
}

// The exit status a shell would report for `status`.
int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

bool TrainsDataParallel(const std::string& command) {
  return command == "vae" || command == "dit" || command == "convert" || command == "distill";
}

int LaunchTrainGroup(const std::vector<std::string>& args) {
  int nproc = 0, port = 0;
  size_t i = 0;
  for (; i < args.size() && args[i] != "--"; ++i) {
    const bool has_value = i + 1 < args.size();
    if (args[i] == "--nproc" && has_value) {
      if (!absl::SimpleAtoi(args[++i], &nproc) || nproc < 1 || nproc > kMaxProcesses) {
        return Usage(absl::StrCat("--nproc '", args[i], "' is not a number in 1..", kMaxProcesses));
      }
    } else if (args[i] == "--master-port" && has_value) {
      if (!absl::SimpleAtoi(args[++i], &port) || port < 1 || port > 65535) {
        return Usage(absl::StrCat("--master-port '", args[i], "' is not a port in 1..65535"));
      }
    } else {
      return Usage(absl::StrCat("unknown flag '", args[i], "' (flags go before --)"));
    }
  }
  if (nproc == 0) return Usage("--nproc is required");
  if (i + 1 >= args.size()) return Usage("no command after --");
  const std::vector<std::string> command(args.begin() + static_cast<long>(i) + 1, args.end());
  if (!TrainsDataParallel(command[0])) {
    return Usage(absl::StrCat("'", command[0], "' does not train data-parallel"));
  }
  if (port == 0) port = FreeLoopbackPort();
  if (port <= 0) {
    std::cerr << "linvideo-train launch: no free loopback port; pass --master-port\n";
    return 1;
  }
  std::cout << "linvideo-train launch: " << nproc << " processes of '" << command[0]
            << "', rendezvous 127.0.0.1:" << port << std::endl;

  std::map<pid_t, int> ranks;  // running children -> rank
  const pid_t launcher = getpid();
  for (int rank = 0; rank < nproc; ++rank) {
    const pid_t pid = fork();
    if (pid < 0) {
      std::cerr << "linvideo-train launch: fork failed for rank " << rank << "\n";
      for (const auto& [p, r] : ranks) kill(p, SIGKILL);
      return 1;
    }
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != launcher) _exit(1);  // the launcher died before prctl
      setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("RANK", std::to_string(rank).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      std::vector<char*> argv;
      static char self[] = "linvideo-train";
      argv.push_back(self);
      for (const std::string& a : command) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv("/proc/self/exe", argv.data());
      _exit(127);
    }
    ranks[pid] = rank;
  }

  int result = 0;
  bool stopping = false;
  auto deadline = std::chrono::steady_clock::time_point::max();
  while (!ranks.empty()) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, stopping ? WNOHANG : 0);
    if (pid < 0) break;
    if (pid == 0) {  // stopping: the others have not exited yet
      if (std::chrono::steady_clock::now() > deadline) {
        for (const auto& [p, r] : ranks) kill(p, SIGKILL);
        deadline = std::chrono::steady_clock::time_point::max();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    auto it = ranks.find(pid);
    if (it == ranks.end()) continue;
    const int rank = it->second;
    ranks.erase(it);
    const int code = ExitCode(status);
    if (code != 0 && !stopping) {
      std::cerr << "linvideo-train launch: rank " << rank << " exited with status " << code
                << "; stopping the other " << ranks.size() << " rank(s)" << std::endl;
      result = code;
      stopping = true;
      for (const auto& [p, r] : ranks) kill(p, SIGTERM);
      deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    }
  }
  return result;
}

}  // namespace linvideo::tools

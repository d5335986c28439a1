#include "server/child_process.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

extern char** environ;

namespace linvideo::server {

absl::StatusOr<pid_t> SpawnChild(const ChildOptions& o) {
  if (o.argv.empty()) return absl::InvalidArgumentError("SpawnChild: empty argv");
  // Everything the child needs is prepared here: between fork and exec only async-signal-safe
  // calls are allowed (the server is multi-threaded).
  std::vector<std::string> args = o.argv;
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    bool replaced = false;
    for (const auto& [k, v] : o.env) {
      if (std::strncmp(*e, k.c_str(), k.size()) == 0 && (*e)[k.size()] == '=') replaced = true;
    }
    if (!replaced) env_strings.emplace_back(*e);
  }
  for (const auto& [k, v] : o.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  for (int c : o.cpus) CPU_SET(c, &cpus);
  const int log_fd = open(o.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open ", o.log_file, ": ", strerror(errno)));
  }
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    if (null_fd >= 0) close(null_fd);
    return absl::ResourceExhaustedError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(128 + SIGKILL);  // the server died before prctl
    // The server blocks SIGTERM/SIGINT in every thread (sigwait); the child must not inherit that.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    if (!o.work_dir.empty() && chdir(o.work_dir.c_str()) != 0) _exit(126);
    if (!o.cpus.empty()) sched_setaffinity(0, sizeof cpus, &cpus);
    if (o.nice != 0) setpriority(PRIO_PROCESS, 0, getpriority(PRIO_PROCESS, 0) + o.nice);
    execve(argv[0], argv.data(), envp.data());
    const char msg[] = "exec failed\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(127);
  }
  close(log_fd);
  if (null_fd >= 0) close(null_fd);
  return pid;
}

std::optional<ChildExit> PollChild(pid_t pid) {
  int status = 0;
  const pid_t r = waitpid(pid, &status, WNOHANG);
  if (r == 0) return std::nullopt;
  ChildExit e;
  if (r < 0) {  // not our child any more (already reaped): report it as lost
    e.signaled = true;
    e.signal = SIGKILL;
    return e;
  }
  if (WIFSIGNALED(status)) {
    e.signaled = true;
    e.signal = WTERMSIG(status);
  } else {
    e.code = WEXITSTATUS(status);
  }
  return e;
}

void SignalChild(pid_t pid, int sig) {
  if (pid <= 0) return;
  if (kill(-pid, sig) != 0) kill(pid, sig);
}

namespace {

// The state letter of /proc/PID/stat ('R', 'S', 'Z', ...), or 0 when the process is gone.
char ProcState(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  const size_t paren = line.rfind(')');  // the command name may hold spaces and parentheses
  return paren != std::string::npos && paren + 2 < line.size() ? line[paren + 2] : 0;
}

}  // namespace

bool ChildAlive(pid_t pid, const std::string& work_dir) {
  if (pid <= 0 || kill(pid, 0) != 0) return false;
  char cwd[4096];
  const std::string link = "/proc/" + std::to_string(pid) + "/cwd";
  const ssize_t n = readlink(link.c_str(), cwd, sizeof(cwd) - 1);
  if (n <= 0) return false;
  const char state = ProcState(pid);
  return state != 0 && state != 'Z' && std::string(cwd, n) == work_dir;
}

bool WaitGone(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const char state = ProcState(pid);
    if (state == 0 || state == 'Z') return true;  // a zombie holds no files open
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

}  // namespace linvideo::server

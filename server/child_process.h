#pragma once
// Child processes for post-training jobs: fork + exec with the isolation a job needs from
// serving (its own process group, CPU affinity, nice level, output to a log file, extra
// environment), and killed with the thread that started it (PR_SET_PDEATHSIG), so a server that
// dies, even by SIGKILL, leaves no training running behind it.
// Thread safety: SpawnChild must be called from a thread that outlives the child (the
// JobManager's supervisor); the other functions from any thread.

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace linvideo::server {

struct ChildOptions {
  std::vector<std::string> argv;                         // argv[0]: the binary's path
  std::string log_file;                                  // stdout and stderr are appended here
  std::string work_dir;                                  // the child's working directory
  std::vector<int> cpus;                                 // sched_setaffinity; empty: inherit
  int nice = 0;                                          // added to the server's nice level
  std::vector<std::pair<std::string, std::string>> env;  // set in the child's environment
};

absl::StatusOr<pid_t> SpawnChild(const ChildOptions& options);

struct ChildExit {
  bool signaled = false;
  int code = 0;    // exit status when !signaled
  int signal = 0;  // the signal that killed it
};
// Reaps `pid` if it has ended; nullopt while it runs.
std::optional<ChildExit> PollChild(pid_t pid);
// Sends `sig` to the child's process group (the child and anything it started).
void SignalChild(pid_t pid, int sig);
// Whether `pid` is alive (not a zombie) and runs in `work_dir` (its job folder, exactly): a child
// left by a server that was killed before PR_SET_PDEATHSIG could act.
bool ChildAlive(pid_t pid, const std::string& work_dir);
// Waits until `pid` (not necessarily our child) has exited; false after `timeout`.
bool WaitGone(pid_t pid, absl::Duration timeout);

}  // namespace linvideo::server

#pragma once
// `linvideo-train launch`: runs one linvideo-train command as N data-parallel processes on this
// machine (what `torchrun --standalone --nproc-per-node N` does for a PyTorch script), so the
// server's Jobs service and a single-node Kubernetes Job can train multi-process without a
// launcher of their own. Each rank is /proc/self/exe with WORLD_SIZE, RANK, LOCAL_RANK,
// MASTER_ADDR=127.0.0.1 and MASTER_PORT set (core/train/data_parallel.h), in the launcher's
// process group, killed with the launcher (PR_SET_PDEATHSIG). When one rank fails the others are
// sent SIGTERM (SIGKILL 10 s later), and the launcher exits with the first failure's status, so a
// job restarts the whole group from its last checkpoint.

#include <string>
#include <vector>

namespace linvideo::tools {

// Whether `command` (vae, dit, convert, distill) trains data-parallel over WORLD_SIZE processes.
bool TrainsDataParallel(const std::string& command);

// `args`: --nproc N [--master-port P] -- COMMAND [FLAGS...]. Returns the process exit status
// (2 with a message on stderr for bad arguments).
int LaunchTrainGroup(const std::vector<std::string>& args);

}  // namespace linvideo::tools

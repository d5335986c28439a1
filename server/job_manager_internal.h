#pragma once
// JobManager's per-job record, shared by job_manager.cc (the supervisor: stages, children,
// job.json) and job_publish.cc (the publish stage). Private to those two files.

#include <sys/types.h>

#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "server/job_manager.h"
#include "server/job_stages.h"

namespace linvideo::server {

struct JobManager::Job {
  JobSnapshot snap;
  std::vector<Stage> stages;
  pid_t pid = -1;
  int retries = 0;  // of the current stage
  bool cancel_requested = false;
  absl::Time cancel_sent = absl::InfinitePast();
  absl::Time next_start = absl::InfinitePast();  // a retry waits a moment
  absl::Time disk_checked = absl::InfinitePast();
  bool publishing = false;
  std::thread publisher;
};

}  // namespace linvideo::server

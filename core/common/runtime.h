#pragma once
// Process-wide runtime settings: intra-op threads and BLAS, device/dtype parsing.

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

#include "absl/status/statusor.h"

namespace linvideo::core {

// Sets LibTorch intra-op (and inter-op) threads and the BLAS (BLIS) threads and kernel set.
// `threads <= 0` means every core this process may run on (sched_getaffinity), because
// LibTorch 1.13 defaults to one thread and BLIS to one thread. Call it first thing in main(),
// before any tensor math. Also installs the huge-page CPU allocator (huge_page_allocator.h; off
// with LINVIDEO_HUGE_PAGES=0). Idempotent, thread-safe. Returns the thread count in effect.
int InitRuntime(int threads = 0);

// Number of CPUs this process may run on: its affinity mask, capped by the tightest cgroup v2 CPU
// quota (cpu.max, rounded up) of its cgroup and their ancestors where there is one: a container
// limited to 8 CPUs on a 64-core node sees 64 in its affinity mask.
int AvailableCores();
// CPUs' worth of time a cgroup v2 cpu.max ("QUOTA PERIOD" in microseconds) allows, rounded up;
// 0 for no limit ("max ...") or text that is not such a line.
int CpusFromCgroupCpuMax(const std::string& cpu_max);
// The tightest of those quotas over the cgroup v2 that `proc_self_cgroup` (the text of
// /proc/self/cgroup) names in its "0::PATH" line and its ancestors, read under `root`
// (/sys/fs/cgroup); 0 when there is none or no v2 hierarchy. In a container with its own cgroup
// namespace PATH is "/" and `root` is the container's cgroup.
int CgroupCpuLimit(const std::string& proc_self_cgroup, const std::string& root);

// "cpu", "cuda", "cuda:1" -> Device; error names the allowed values.
absl::StatusOr<c10::Device> ParseDevice(const std::string& text);
// "fp32"/"float32", "bf16"/"bfloat16", "fp16"/"float16" -> ScalarType.
absl::StatusOr<c10::ScalarType> ParseDtype(const std::string& text);
std::string DtypeName(c10::ScalarType dtype);

// Where the runtime's tensors live and in which dtype the large matmuls run. Norms, modulation and
// time embeddings stay fp32 regardless (as in the official Wan code).
struct DeviceOptions {
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType dtype = c10::kFloat;
};

}  // namespace linvideo::core

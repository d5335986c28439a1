#include "core/common/runtime.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/common/huge_page_allocator.h"

namespace linvideo::core {

int CpusFromCgroupCpuMax(const std::string& cpu_max) {
  std::istringstream in(cpu_max);
  std::string quota;
  int64_t period = 0;
  if (!(in >> quota >> period) || quota == "max" || period <= 0) return 0;
  int64_t q = 0;
  if (!absl::SimpleAtoi(quota, &q) || q <= 0) return 0;
  return static_cast<int>(std::clamp<int64_t>(q / period + (q % period != 0), 1, 1 << 20));
}

namespace {

std::string ReadSmallFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return "";
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

}  // namespace

int CgroupCpuLimit(const std::string& proc_self_cgroup, const std::string& root) {
  std::istringstream lines(proc_self_cgroup);
  std::string line, path;
  while (std::getline(lines, line)) {
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  }
  if (path.empty() || path[0] != '/') return 0;  // no cgroup v2 hierarchy
  int limit = 0;
  for (;;) {
    const std::string dir = path == "/" ? root : root + path;
    const int cpus = CpusFromCgroupCpuMax(ReadSmallFile(dir + "/cpu.max"));
    if (cpus > 0) limit = limit > 0 ? std::min(limit, cpus) : cpus;
    if (path == "/") break;
    const size_t slash = path.rfind('/');
    path = slash == 0 ? "/" : path.substr(0, slash);
  }
  return limit;
}

int AvailableCores() {
  int n = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int limit = CgroupCpuLimit(ReadSmallFile("/proc/self/cgroup"), "/sys/fs/cgroup");
  return limit > 0 ? std::min(n, limit) : n;
}

namespace {

// BLIS (Debian's libblas.so.3 alternative) chooses its kernel set once, at first use, from
// BLIS_ARCH_TYPE, and on some AVX-512 CPUs (e.g. AMD EPYC) autodetects an AVX2 kernel set: the
// Skylake-X kernels are ~5x faster there (measured: 83 -> 415 GFLOP/s on 2 cores). Its thread count
// is its own (BLIS_NUM_THREADS, default 1), independent of LibTorch's intra-op threads. Both must
// be set before the first BLAS call, which is why this runs at start-up in InitRuntime().
void ConfigureBlis(int threads) {
  if (std::getenv("BLIS_ARCH_TYPE") == nullptr && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl")) {
    setenv("BLIS_ARCH_TYPE", "skx", /*overwrite=*/0);
  }
  using SetThreads = void (*)(int64_t);
  auto set_threads =
      reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "bli_thread_set_num_threads"));
  if (set_threads != nullptr) {
    set_threads(threads);
  } else {
    setenv("BLIS_NUM_THREADS", std::to_string(threads).c_str(), /*overwrite=*/0);
  }
}

}  // namespace

int InitRuntime(int threads) {
  static std::once_flag interop_once;
  const int n = threads > 0 ? threads : AvailableCores();
  ConfigureBlis(n);
  const char* huge = std::getenv("LINVIDEO_HUGE_PAGES");
  if (huge == nullptr || std::string(huge) != "0") InstallHugePageAllocator();
  at::set_num_threads(n);
  // The inter-op pool may only be sized once, before first use.
  std::call_once(interop_once, [&] {
    try {
      at::set_num_interop_threads(std::max(1, n / 2));
    } catch (...) {
    }
  });
  return at::get_num_threads();
}

absl::StatusOr<c10::Device> ParseDevice(const std::string& text) {
  const std::string t = absl::AsciiStrToLower(text);
  if (t == "cpu") return c10::Device(c10::kCPU);
  if (t == "cuda") return c10::Device(c10::kCUDA, 0);
  if (t.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (absl::SimpleAtoi(t.substr(5), &index) && index >= 0 && index < 64) {
      return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown device '", text, "'; allowed: cpu, cuda, cuda:N"));
}

absl::StatusOr<c10::ScalarType> ParseDtype(const std::string& text) {
  const std::string t = absl::AsciiStrToLower(text);
  if (t == "fp32" || t == "float32" || t == "f32" || t == "float") return c10::kFloat;
  if (t == "bf16" || t == "bfloat16") return c10::kBFloat16;
  if (t == "fp16" || t == "float16" || t == "f16" || t == "half") return c10::kHalf;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype '", text, "'; allowed: fp32, bf16, fp16"));
}

std::string DtypeName(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::kFloat:
      return "fp32";
    case c10::kBFloat16:
      return "bf16";
    case c10::kHalf:
      return "fp16";
    default:
      return c10::toString(dtype);
  }
}

}  // namespace linvideo::core

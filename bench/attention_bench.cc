// linvideo-attention-bench: softmax vs linear vs hybrid(r=0.5) attention at Wan 2.1 1.3B head
// shapes (12 heads × 128, batch 1), printing time, GFLOP/s, peak memory and the linear/softmax
// speedup measured in one run.
//
// Every (kind, N) case runs in a fresh child process (this binary re-executed with --child) so its
// peak memory is the child's own getrusage() max RSS: "peak" is the whole child process (LibTorch,
// inputs and all), "delta" the growth of the high-water mark during the timed calls (what the
// attention itself needed beyond its inputs). On CUDA, memory is not measured (printed as n/a).
// cpu_s is the process CPU time of the fastest call (all threads): on a shared, loaded machine run
// with --threads=1 and compare cpu_s, which is what the call costs on an idle core.
//
// FLOP model (per batch·head, Nq = Nk = N, D = head_dim; exps and normalisations not counted):
//   softmax: 4·N²·D (q·kᵀ and p·v)
//   linear:  12·N·D² + 8·N·D (φ projections of q and k 2·2·N·D², Σφ(k)ᵀv 4·N·D², φ(q)·S 4·N·D²,
//            denominators 8·N·D)
//   hybrid:  softmax + linear
//
// Kinds: softmax (SDPA flash / memory-efficient on CUDA), linear (LinearAttention()'s dispatch:
// on CUDA the tensor-core kernel for bf16, the CUDA-core kernel for fp32), linear-cuda-core (the
// CUDA-core kernel forced, CUDA only), linear-composite (LibTorch ops), hybrid (r = 0.5).
//
// Usage: linvideo-attention-bench [--sizes=1024,4096,16384,32760] [--quick] [--kinds=...]
//        [--device=cpu|cuda] [--dtype=fp32|bf16] [--threads=N] [--check]

#include <ATen/ATen.h>
#include <sys/resource.h>
#include <time.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "core/attention/hybrid_attention.h"
#include "core/attention/linear_attention.h"
#include "core/attention/softmax_attention.h"
#include "core/common/runtime.h"
#include "kernels/linear_attention.h"
#include "kernels/linear_attention_selfcheck.h"

namespace {

using linvideo::core::attention::AttentionCoreOptions;
using linvideo::core::attention::AttentionKind;

constexpr int64_t kHeads = 12, kHeadDim = 128;

struct Flags {
  std::vector<int64_t> sizes = {1024, 4096, 16384, 32760};
  std::vector<std::string> kinds;  // default per device
  std::string device = "cpu", dtype = "fp32";
  int threads = 0;
  bool check = false;
  // --child=<kind>:<N>
  std::string child;
};

double FlopsPerHead(const std::string& kind, double n) {
  const double d = kHeadDim;
  const double softmax = 4 * n * n * d, linear = 12 * n * d * d + 8 * n * d;
  if (kind == "softmax") return softmax;
  if (kind == "hybrid") return softmax + linear;
  return linear;  // linear, linear-cuda-core, linear-composite
}

double MaxRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // KiB -> MiB
}

// CPU seconds used by this process (all threads): on a loaded machine, with --threads=1, the
// closest measure of what the call costs on an idle core.
double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void Sync(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

// Runs one case in this process and prints "RESULT <kind> <N> <median_s> <min_s> <reps> <peak>
// <delta> <cpu_s> <queued_s>" (queued: one run of back-to-back calls, per call).
int RunChild(const Flags& f) {
  const auto pos = f.child.find(':');
  const std::string kind = f.child.substr(0, pos);
  int64_t n = 0;
  if (pos == std::string::npos || !absl::SimpleAtoi(f.child.substr(pos + 1), &n)) return 2;
  linvideo::core::InitRuntime(f.threads);
  auto device = *linvideo::core::ParseDevice(f.device);
  auto dtype = *linvideo::core::ParseDtype(f.dtype);
  at::InferenceMode inference;
  at::manual_seed(0);
  auto opts = at::TensorOptions().device(device).dtype(dtype);
  auto q = at::randn({1, n, kHeads, kHeadDim}, opts);  // [1, N, 12, 128]
  auto k = at::randn({1, n, kHeads, kHeadDim}, opts);
  auto v = at::randn({1, n, kHeads, kHeadDim}, opts);
  AttentionCoreOptions o;
  o.num_heads = kHeads;
  o.head_dim = kHeadDim;
  o.hybrid_r_init = 0.5;
  auto hybrid = *linvideo::core::attention::HybridAttentionCoreImpl::Create(o);
  hybrid->to(device);
  auto wq = hybrid->feature_map_q(), wk = hybrid->feature_map_k();
  auto run = [&]() -> at::Tensor {
    if (kind == "softmax") return linvideo::kernels::SoftmaxAttention(q, k, v);
    if (kind == "linear") return linvideo::kernels::LinearAttention(q, k, v, wq, wk);
    if (kind == "linear-composite")
      return linvideo::kernels::LinearAttentionComposite(q, k, v, wq, wk);
    if (kind == "linear-cuda-core") {
      return linvideo::kernels::LinearAttentionFusedCuda(
          q, k, v, wq, wk, linvideo::kernels::kLinearAttentionEps,
          linvideo::kernels::LinearAttentionCudaKernel::kCudaCore);
    }
    return hybrid->forward(q, k, v);
  };
  Sync(device);
  const double rss_before = MaxRssMb();
  // Warm up unless one call is already long (softmax / hybrid at large N).
  if (FlopsPerHead(kind, n) * kHeads < 2e11) {
    run();
    Sync(device);
  }
  std::vector<double> times;
  double total = 0, cpu_min = 1e30;
  while (times.empty() || (total < 2.0 && times.size() < 10)) {
    const double c0 = CpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    auto out = run();
    Sync(device);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    cpu_min = std::min(cpu_min, CpuSeconds() - c0);
    times.push_back(s);
    total += s;
  }
  std::sort(times.begin(), times.end());
  // Queued: calls launched back to back, one synchronisation at the end, as the layers of a model
  // run (the CPU launches ahead of the GPU), so a call's host-side cost hides behind the device
  // work of the ones before it unless it is the larger. On the CPU the same as the loop above.
  double queued = times[0];
  if (device.is_cuda()) {
    const int calls = static_cast<int>(std::clamp(0.2 / std::max(times[0], 1e-6), 3.0, 200.0));
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) run();
    Sync(device);
    queued = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / calls;
  }
  const double rss_after = MaxRssMb();
  std::printf("RESULT %s %lld %.6f %.6f %zu %.1f %.1f %.6f %.7f\n", kind.c_str(),
              static_cast<long long>(n), times[times.size() / 2], times[0], times.size(),
              device.is_cuda() ? -1.0 : rss_after, device.is_cuda() ? -1.0 : rss_after - rss_before,
              cpu_min, queued);
  return 0;
}

int RunCheck(const Flags& f) {
  linvideo::core::InitRuntime(f.threads);
  const bool cuda = torch::cuda::is_available();
  const c10::Device device = cuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  std::printf("linear attention parity on %s (fused kernel compiled: %s)\n", cuda ? "cuda" : "cpu",
              linvideo::kernels::LinearAttentionFusedCudaCompiled() ? "yes" : "no");
  bool ok = true;
  for (const auto& r : linvideo::kernels::RunLinearAttentionParity(device)) {
    std::printf("  %s\n", r.ToString().c_str());
    ok = ok && r.pass;
  }
  std::printf("parity: %s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

bool ParseFlags(int argc, char** argv, Flags& f) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const std::string& name) -> const char* {
      return a.rfind(name + "=", 0) == 0 ? argv[i] + name.size() + 1 : nullptr;
    };
    if (a == "--quick") {
      f.sizes = {256, 1024};
    } else if (a == "--check") {
      f.check = true;
    } else if (const char* s = value("--sizes")) {
      f.sizes.clear();
      for (auto part : absl::StrSplit(s, ',')) {
        int64_t n;
        if (!absl::SimpleAtoi(part, &n) || n <= 0) return false;
        f.sizes.push_back(n);
      }
    } else if (const char* s = value("--kinds")) {
      f.kinds = absl::StrSplit(s, ',');
    } else if (const char* s = value("--device")) {
      f.device = s;
    } else if (const char* s = value("--dtype")) {
      f.dtype = s;
    } else if (const char* s = value("--threads")) {
      if (!absl::SimpleAtoi(s, &f.threads)) return false;
    } else if (const char* s = value("--child")) {
      f.child = s;
    } else {
      return false;
    }
  }
  return linvideo::core::ParseDevice(f.device).ok() && linvideo::core::ParseDtype(f.dtype).ok();
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  if (!ParseFlags(argc, argv, f)) {
    std::fprintf(
        stderr,
        "usage: %s [--sizes=1024,4096,16384,32760] [--quick] "
        "[--kinds=softmax,linear,hybrid,linear-cuda-core,linear-composite] [--device=cpu|cuda] "
        "[--dtype=fp32|bf16] [--threads=N] [--check]\n",
        argv[0]);
    return 2;
  }
  if (!f.child.empty()) return RunChild(f);
  if (f.check) return RunCheck(f);
  const bool cuda = f.device.rfind("cuda", 0) == 0;
  if (f.kinds.empty()) {
    f.kinds = cuda ? std::vector<std::string>{"softmax", "linear", "linear-cuda-core",
                                              "linear-composite", "hybrid"}
                   : std::vector<std::string>{"softmax", "linear", "hybrid"};
  }
  std::printf("attention bench: batch 1, %lld heads x %lld, device %s, dtype %s, threads %d\n",
              static_cast<long long>(kHeads), static_cast<long long>(kHeadDim), f.device.c_str(),
              f.dtype.c_str(), f.threads > 0 ? f.threads : linvideo::core::AvailableCores());
  std::printf("FLOP model per head: softmax 4*N^2*D; linear 12*N*D^2 + 8*N*D; hybrid the sum\n");
  std::printf("queued_ms: calls launched back to back with one synchronisation, per call (CUDA)\n");
  std::printf("%-17s %7s %11s %11s %9s %9s %10s %10s %10s %4s %10s\n", "kind", "N", "median_s",
              "min_s", "cpu_s", "GFLOP", "GFLOP/s", "peak_MiB", "delta_MiB", "reps", "queued_ms");
  std::map<std::pair<std::string, int64_t>, double> best;      // min wall seconds
  std::map<std::pair<std::string, int64_t>, double> best_cpu;  // min process CPU seconds
  std::map<std::pair<std::string, int64_t>, double> queued;    // back-to-back seconds per call
  bool failed = false;
  for (int64_t n : f.sizes) {
    for (const auto& kind : f.kinds) {
      std::string cmd = "'/proc/" + std::to_string(getpid()) + "/exe' --child=" + kind + ":" +
                        std::to_string(n) + " --device=" + f.device + " --dtype=" + f.dtype +
                        " --threads=" + std::to_string(f.threads);
      std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
      char line[512];
      bool got = false;
      while (pipe && fgets(line, sizeof(line), pipe.get())) {
        char k[64];
        long long nn;
        double med, mn, peak, delta, cpu, back_to_back;
        size_t reps;
        if (std::sscanf(line, "RESULT %63s %lld %lf %lf %zu %lf %lf %lf %lf", k, &nn, &med, &mn,
                        &reps, &peak, &delta, &cpu, &back_to_back) == 9) {
          const double gflop = FlopsPerHead(kind, double(n)) * kHeads / 1e9;
          char peak_s[32] = "n/a", delta_s[32] = "n/a";
          if (peak >= 0) std::snprintf(peak_s, sizeof(peak_s), "%.0f", peak);
          if (delta >= 0) std::snprintf(delta_s, sizeof(delta_s), "%.0f", delta);
          std::printf("%-17s %7lld %11.4f %11.4f %9.4f %9.1f %10.1f %10s %10s %4zu %10.4f\n",
                      kind.c_str(), nn, med, mn, cpu, gflop, gflop / mn, peak_s, delta_s, reps,
                      1e3 * back_to_back);
          best_cpu[{kind, n}] = cpu;
          queued[{kind, n}] = back_to_back;
          std::fflush(stdout);
          best[{kind, n}] = mn;
          got = true;
        }
      }
      if (!got) {
        std::printf("%-17s %7lld FAILED (child produced no result)\n", kind.c_str(),
                    static_cast<long long>(n));
        failed = true;
      }
    }
  }
  std::printf("\nspeedups (min times, same run):\n");
  for (int64_t n : f.sizes) {
    auto s = best.find({"softmax", n}), l = best.find({"linear", n});
    auto c = best.find({"linear-composite", n}), cc = best.find({"linear-cuda-core", n});
    if (s != best.end() && l != best.end()) {
      std::printf(
          "  N=%lld: softmax/linear = %.1fx (wall), %.1fx (process CPU time), %.2fx (queued)\n",
          static_cast<long long>(n), s->second / l->second,
          best_cpu[{"softmax", n}] / best_cpu[{"linear", n}],
          queued[{"softmax", n}] / queued[{"linear", n}]);
    }
    if (s != best.end() && cc != best.end()) {
      std::printf("  N=%lld: softmax/linear-cuda-core = %.1fx (wall)\n", static_cast<long long>(n),
                  s->second / cc->second);
    }
    if (cc != best.end() && l != best.end()) {
      std::printf("  N=%lld: linear-cuda-core/linear = %.2fx\n", static_cast<long long>(n),
                  cc->second / l->second);
    }
    if (c != best.end() && l != best.end()) {
      std::printf("  N=%lld: linear-composite/linear(fused) = %.2fx\n", static_cast<long long>(n),
                  c->second / l->second);
    }
  }
  return failed ? 1 : 0;
}

// linvideo-runtime-bench: shows the runtime uses all cores and a fast BLAS, and that softmax
// attention at the 480p token count stays memory-bounded. Everything is measured side by side in
// one run; ratios are printed, nothing is asserted.
//
//   linvideo-runtime-bench [--n 2048] [--attn-tokens 32760] [--skip-attention]

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/common/runtime.h"
#include "kernels/softmax_attention.h"

extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n,
                       const int* k, const float* alpha, const float* a, const int* lda,
                       const float* b, const int* ldb, const float* beta, float* c, const int* ldc);

namespace {

double MedianSeconds(int reps, const std::function<void()>& fn) {
  fn();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto s = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Runs `fn` in a forked child and returns {seconds, peak RSS growth in bytes}: max RSS of a fresh
// process is an honest peak-memory measure without allocator hooks.
std::pair<double, double> MeasureInChild(const std::function<double()>& fn) {
  int fds[2];
  if (pipe(fds) != 0) return {-1, -1};
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    struct rusage before {};
    getrusage(RUSAGE_SELF, &before);
    double secs = fn();
    struct rusage after {};
    getrusage(RUSAGE_SELF, &after);
    double out[2] = {secs, (after.ru_maxrss - before.ru_maxrss) * 1024.0};
    ssize_t w = write(fds[1], out, sizeof(out));
    (void)w;
    _exit(0);
  }
  close(fds[1]);
  double out[2] = {-1, -1};
  ssize_t r = read(fds[0], out, sizeof(out));
  (void)r;
  close(fds[0]);
  waitpid(pid, nullptr, 0);
  return {out[0], out[1]};
}

}  // namespace

int main(int argc, char** argv) {
  int n = 2048;
  int64_t attn_tokens = 32760;
  bool skip_attention = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--n" && i + 1 < argc) {
      n = std::atoi(argv[++i]);
    } else if (a == "--attn-tokens" && i + 1 < argc) {
      attn_tokens = std::atoll(argv[++i]);
    } else if (a == "--skip-attention") {
      skip_attention = true;
    } else {
      std::fprintf(stderr, "usage: %s [--n 2048] [--attn-tokens 32760] [--skip-attention]\n",
                   argv[0]);
      return 2;
    }
  }
  const int cores = linvideo::core::AvailableCores();
  const double flop = 2.0 * n * n * static_cast<double>(n);
  auto a = at::randn({n, n});
  auto b = at::randn({n, n});
  auto c = at::empty({n, n});

  const float alpha = 1.f, beta = 0.f;
  auto plain_blas = [&] {
    sgemm_("N", "N", &n, &n, &n, &alpha, b.data_ptr<float>(), &n, a.data_ptr<float>(), &n, &beta,
           c.data_ptr<float>(), &n);
  };
  // LibTorch and BLIS as they come (1 thread each, BLIS autodetected kernels), before the runtime
  // has configured anything: measured in a child so the parent's BLAS is still uninitialised.
  const double t_default =
      MeasureInChild([&] { return MedianSeconds(5, [&] { at::mm_out(c, a, b); }); }).first;
  const int threads = linvideo::core::InitRuntime();
  const double t_blas = MedianSeconds(5, plain_blas);
  const double t_rt = MedianSeconds(5, [&] { at::mm_out(c, a, b); });

  std::printf("fp32 matmul %dx%dx%d (cores available: %d)\n", n, n, n, cores);
  std::printf("  LibTorch defaults (1 thread, BLIS autodetect) %8.1f GFLOP/s\n",
              flop / t_default / 1e9);
  std::printf("  plain BLAS sgemm_ call (libblas.so.3)        %8.1f GFLOP/s\n",
              flop / t_blas / 1e9);
  std::printf("  linvideo runtime at::mm (%d threads)          %8.1f GFLOP/s\n", threads,
              flop / t_rt / 1e9);
  std::printf("  ratio runtime / defaults: %.2fx   runtime / plain BLAS: %.2fx\n", t_default / t_rt,
              t_blas / t_rt);

  if (!skip_attention) {
    // Measured in this process (OpenMP and BLIS thread pools do not survive fork()): peak memory is
    // the growth of the max-RSS high-water mark during the call, which the 48 MiB matmul above
    // cannot mask.
    const int64_t heads = 12, d = 128;
    auto q = at::randn({1, attn_tokens, heads, d});
    auto k = at::randn({1, attn_tokens, heads, d});
    auto v = at::randn({1, attn_tokens, heads, d});
    struct rusage before {};
    getrusage(RUSAGE_SELF, &before);
    auto s = std::chrono::steady_clock::now();
    auto o = linvideo::kernels::SoftmaxAttention(q, k, v);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count();
    struct rusage after {};
    getrusage(RUSAGE_SELF, &after);
    const double growth = (after.ru_maxrss - before.ru_maxrss) * 1024.0;
    const double io_bytes = 4.0 * attn_tokens * heads * d * 4;  // q, k, v and the output
    const double attn_flop = 4.0 * heads * static_cast<double>(attn_tokens) * attn_tokens * d;
    std::printf("softmax attention N=%lld, %lld heads x %lld (memory-bounded, query-chunked)\n",
                static_cast<long long>(attn_tokens), static_cast<long long>(heads),
                static_cast<long long>(d));
    std::printf("  time %.2f s, %.1f GFLOP/s (FLOPs = 4*H*N^2*d = %.2f TFLOP)\n", secs,
                attn_flop / secs / 1e9, attn_flop / 1e12);
    std::printf("  peak memory: inputs+output %.0f MiB + %.0f MiB working set (max-RSS growth)\n",
                io_bytes / 1048576.0, growth / 1048576.0);
  }
  return 0;
}

// linvideo-block-bench: latency of one Wan 2.1 DiT block (core/models/wan/dit_block.h, random
// weights) at the 1.3B dims (dim 1536, ffn 8960, 12 heads × 128, 512 text tokens) and the 480p
// token count 32,760 (21 × 30 × 52 latent patches), for three self-attention cores:
//   softmax  — the memory-bounded softmax core,
//   linear   — LinVideo linear attention (identity feature maps; cost does not depend on values),
//   skip     — a core that returns zeros: the block still runs norms, modulation, q/k/v/o
//              projections, RoPE, cross-attention and FFN, i.e. everything except attention itself.
// From the measured times it prints linear/skip (the "attention for free" limit) and the projected
// whole-model speedup with k of 30 layers linear: 30·T_softmax / ((30−k)·T_softmax + k·T_linear)
// (blocks only: patch embedding, time/text embeddings and the head are < 1% of a forward).
//
// FLOP model per block (N tokens, L text tokens, C = dim, F = ffn, H·D = C):
//   self-attn projections 8·N·C², cross-attn q/o 4·N·C², cross-attn k/v 4·L·C²,
//   cross-attention 4·N·L·C, FFN 4·N·C·F, softmax attention 4·N²·C, linear attention 12·N·C·D +
//   8·N·C.
// The 14B/720p analogue (C 5120, F 13824, 40 heads, N 75,600) is estimated from this FLOP model at
// the rates measured here (dense part at the skip block's GFLOP/s, attention at its own rate); one
// 14B/720p softmax block would take ~10 minutes on this CPU and is not run.
//
// Usage: linvideo-block-bench [--tokens=N, a multiple of 256; default the 480p grid] [--quick]
// [--reps=2] [--threads=N]

#include <ATen/ATen.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "core/attention/attention.h"
#include "core/common/runtime.h"
#include "core/models/wan/dit_block.h"
#include "core/models/wan/rope.h"

namespace {

namespace att = linvideo::core::attention;
namespace wan = linvideo::core::wan;

// Self-attention core that attends to nothing: output zeros (the bypass reference).
class ZeroAttentionCoreImpl : public att::AttentionCoreImpl {
 public:
  att::AttentionKind kind() const override { return att::AttentionKind::kSoftmax; }
  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor&,
                        const torch::Tensor& v) override {
    return at::zeros({q.size(0), q.size(1), v.size(2), v.size(3)}, v.options());
  }
};

struct Dims {
  int64_t dim, ffn, heads, text, frames, height, width;
  int64_t tokens() const { return frames * height * width; }
};

struct Flops {
  double dense, softmax, linear;  // per block
};

Flops BlockFlops(const Dims& d) {
  const double n = d.tokens(), c = d.dim, l = d.text, f = d.ffn, hd = d.dim / d.heads;
  Flops r;
  r.dense = 8 * n * c * c + 4 * n * c * c + 4 * l * c * c + 4 * n * l * c + 4 * n * c * f;
  r.softmax = 4 * n * n * c;
  r.linear = 12 * n * c * hd + 8 * n * c;
  return r;
}

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Best wall time and best process CPU time over `reps` calls.
struct Timing {
  double wall = 1e30, cpu = 1e30;
};

Timing TimeBlock(const Dims& d, std::shared_ptr<att::AttentionCoreImpl> core, int reps) {
  wan::WanBlockOptions o;
  o.dim = d.dim;
  o.ffn_dim = d.ffn;
  o.num_heads = d.heads;
  auto block = wan::WanAttentionBlock(o, std::move(core));
  at::InferenceMode inference;
  at::manual_seed(0);
  auto x = at::randn({1, d.tokens(), d.dim});  // [1, N, C]
  auto e0 = 0.1 * at::randn({1, 6, d.dim});    // [1, 6, C]
  auto text = at::randn({1, d.text, d.dim});   // [1, L, C]
  auto rope = wan::MakeRopeTable(d.dim / d.heads, d.frames, d.height, d.width);
  Timing best;
  for (int r = 0; r < reps; ++r) {
    const double c0 = CpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    auto [key, value] = block->cross_attn->KeyValue(text);  // [1, L, H, D] each
    auto out = block->forward(x, e0, rope, key, value);     // [1, N, C]
    best.wall = std::min(
        best.wall, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    best.cpu = std::min(best.cpu, CpuSeconds() - c0);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  Dims d{1536, 8960, 12, 512, 21, 30, 52};  // Wan 2.1 1.3B, 480×832, 81 frames
  int reps = 2, threads = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    int64_t v = 0;
    if (a == "--quick") {
      d.frames = 3, d.height = 20, d.width = 26;  // 1,560 tokens
      reps = 1;
    } else if (a.rfind("--tokens=", 0) == 0 && absl::SimpleAtoi(a.substr(9), &v) && v > 0 &&
               v % 256 == 0) {
      d.frames = v / 256, d.height = 16, d.width = 16;  // a (v/256) × 16 × 16 latent grid
    } else if (a.rfind("--reps=", 0) == 0 && absl::SimpleAtoi(a.substr(7), &reps) && reps > 0) {
    } else if (a.rfind("--threads=", 0) == 0 && absl::SimpleAtoi(a.substr(10), &threads)) {
    } else {
      std::fprintf(stderr,
                   "usage: %s [--tokens=N (multiple of 256)] [--quick] [--reps=2] [--threads=N]\n",
                   argv[0]);
      return 2;
    }
  }
  const int used_threads = linvideo::core::InitRuntime(threads);
  const Flops fl = BlockFlops(d);
  std::printf(
      "block bench: dim %lld, ffn %lld, heads %lld x %lld, text %lld, tokens %lld, "
      "fp32, %d threads, best of %d\n",
      (long long)d.dim, (long long)d.ffn, (long long)d.heads, (long long)(d.dim / d.heads),
      (long long)d.text, (long long)d.tokens(), used_threads, reps);
  std::printf(
      "FLOP model per block: dense (projections, cross-attn, FFN) %.1f GFLOP, softmax "
      "attention %.1f GFLOP, linear attention %.1f GFLOP\n",
      fl.dense / 1e9, fl.softmax / 1e9, fl.linear / 1e9);

  att::AttentionCoreOptions lo;
  lo.kind = att::AttentionKind::kLinear;
  lo.num_heads = d.heads;
  lo.head_dim = d.dim / d.heads;
  auto linear = att::MakeAttentionCore(lo);
  lo.kind = att::AttentionKind::kSoftmax;
  auto softmax = att::MakeAttentionCore(lo);
  if (!linear.ok() || !softmax.ok()) {
    std::fprintf(stderr, "cannot create attention cores\n");
    return 1;
  }
  const Timing skip = TimeBlock(d, std::make_shared<ZeroAttentionCoreImpl>(), reps);
  std::printf("  skip    block: %8.3f s wall, %8.3f s CPU\n", skip.wall, skip.cpu);
  std::fflush(stdout);
  const Timing lin = TimeBlock(d, *linear, reps);
  std::printf("  linear  block: %8.3f s wall, %8.3f s CPU\n", lin.wall, lin.cpu);
  std::fflush(stdout);
  const Timing soft = TimeBlock(d, *softmax, 1);  // one call: it is the long one
  std::printf("  softmax block: %8.3f s wall, %8.3f s CPU\n", soft.wall, soft.cpu);
  // Ratios from wall time and from process CPU time (use the latter, with --threads=1, on a
  // loaded shared machine: wall time there mostly measures the other processes).
  for (int pass = 0; pass < 2; ++pass) {
    const char* what = pass == 0 ? "wall" : "CPU";
    const double ts = pass == 0 ? skip.wall : skip.cpu;
    const double tl = pass == 0 ? lin.wall : lin.cpu;
    const double tx = pass == 0 ? soft.wall : soft.cpu;
    std::printf(
        "[%s] dense %.1f GFLOP/s; linear/skip = %.3f (target <= 1.05); softmax/linear = "
        "%.2fx per block; projected 30-layer speedup (blocks only):",
        what, fl.dense / ts / 1e9, tl / ts, tx / tl);
    for (int k : {10, 16, 20, 30}) {
      std::printf(" %d/30 %.2fx;", k, 30 * tx / ((30 - k) * tx + k * tl));
    }
    std::printf("\n");
  }
  const double t_skip = skip.cpu, t_lin = lin.cpu, t_soft = soft.cpu;

  // Rates (FLOP per CPU second) of the dense part, softmax attention and linear attention.
  const double dense_rate = fl.dense / t_skip;
  const double soft_rate = fl.softmax / std::max(1e-9, t_soft - t_skip);
  const double lin_rate = fl.linear / std::max(1e-9, t_lin - t_skip);
  // Whole-model projections from the FLOP model at the rates measured above (CPU time): the
  // 1.3B/480p one is the measurement itself when --tokens is 32,760.
  struct Model {
    const char* name;
    Dims dims;
    int layers;
    std::vector<int> ks;
  };
  const Model models[] = {{"1.3B/480p", {1536, 8960, 12, 512, 21, 30, 52}, 30, {10, 16, 20}},
                          {"14B/720p", {5120, 13824, 40, 512, 21, 45, 80}, 40, {13, 20, 27}}};
  for (const auto& m : models) {
    const Flops fb = BlockFlops(m.dims);
    const double b_soft = fb.dense / dense_rate + fb.softmax / soft_rate;
    const double b_lin = fb.dense / dense_rate + fb.linear / lin_rate;
    std::printf(
        "%s estimate (FLOP model at the measured CPU-time rates, N=%lld, %d layers): "
        "softmax block %.1f s, linear block %.1f s;",
        m.name, (long long)m.dims.tokens(), m.layers, b_soft, b_lin);
    for (int k : m.ks) {
      std::printf(" %d/%d linear %.2fx;", k, m.layers,
                  m.layers * b_soft / ((m.layers - k) * b_soft + k * b_lin));
    }
    std::printf("\n");
  }
  return 0;
}

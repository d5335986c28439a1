#pragma once
// 3-axis rotary position embedding of the Wan DiT (the official rope_params / rope_apply).
//
// head_dim d is rotated as d/2 ADJACENT pairs (x[2i], x[2i+1]); the pairs are split over the
// frame / height / width axes as c - 2(c/3), c/3, c/3 with c = d/2 (44/42/42 dims for d = 128).
// Each axis uses its own frequency ladder theta^(-2j/d_axis), theta = 10000, positions
// 0..max_positions-1. Angles and their cos/sin are computed in float64 (as the official code) and
// then stored as float32, once per (F, H, W) grid.

#include <c10/core/Device.h>
#include <torch/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>

namespace linvideo::core::wan {

inline constexpr double kRopeTheta = 10000.0;
inline constexpr int64_t kRopeMaxPositions = 1024;

// Complex pairs per axis (t, h, w) for `head_dim`; they sum to head_dim / 2.
std::array<int64_t, 3> RopeAxisPairs(int64_t head_dim);

// Angles [F*H*W, head_dim/2] (float64) of the token grid in row-major (f, h, w) order.
torch::Tensor RopeAngles(int64_t head_dim, int64_t frames, int64_t height, int64_t width,
                         double theta = kRopeTheta, int64_t max_positions = kRopeMaxPositions);

// cos and sin of the angles, float32, shaped [N, 1, head_dim/2] to broadcast over batch and heads.
struct RopeTable {
  torch::Tensor cos;
  torch::Tensor sin;
};
RopeTable MakeRopeTable(int64_t head_dim, int64_t frames, int64_t height, int64_t width,
                        c10::Device device = c10::kCPU, int64_t max_positions = kRopeMaxPositions);

// Rotates x [B, N, heads, head_dim] (float32) by the table; returns a new float32 tensor.
// N must equal the table's token count.
torch::Tensor ApplyRope(const torch::Tensor& x, const RopeTable& table);

// Tables by (F, H, W, device), built on first use. Thread-safe; holds at most `capacity` grids
// (it is cleared when full — callers see a handful of shapes).
class RopeCache {
 public:
  RopeCache(int64_t head_dim, int64_t max_positions, size_t capacity = 16)
      : head_dim_(head_dim), max_positions_(max_positions), capacity_(capacity) {}
  RopeTable Get(int64_t frames, int64_t height, int64_t width, c10::Device device);

 private:
  using Key = std::tuple<int64_t, int64_t, int64_t, int, int>;  // f, h, w, device type, index
  const int64_t head_dim_;
  const int64_t max_positions_;
  const size_t capacity_;
  std::mutex mu_;
  std::map<Key, RopeTable> tables_;  // guarded by mu_
};

}  // namespace linvideo::core::wan

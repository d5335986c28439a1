#include "core/models/wan/rope.h"

#include <ATen/ATen.h>

namespace linvideo::core::wan {
namespace {

// Angles [positions, pairs] (float64) of one axis: p * theta^(-2j / (2 * pairs)).
at::Tensor AxisAngles(int64_t positions, int64_t pairs, double theta) {
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  auto exponent = at::arange(0, 2 * pairs, 2, f64).div(static_cast<double>(2 * pairs));  // [pairs]
  auto inv_freq = at::pow(theta, exponent).reciprocal();                                 // [pairs]
  return at::outer(at::arange(positions, f64), inv_freq);  // [positions, pairs]
}

}  // namespace

std::array<int64_t, 3> RopeAxisPairs(int64_t head_dim) {
  const int64_t c = head_dim / 2;
  return {c - 2 * (c / 3), c / 3, c / 3};
}

torch::Tensor RopeAngles(int64_t head_dim, int64_t frames, int64_t height, int64_t width,
                         double theta, int64_t max_positions) {
  TORCH_CHECK(head_dim % 2 == 0 && head_dim >= 6, "RoPE head_dim must be even and >= 6, got ",
              head_dim);
  TORCH_CHECK(frames > 0 && height > 0 && width > 0, "RoPE grid must be positive, got ", frames,
              "x", height, "x", width);
  TORCH_CHECK(frames <= max_positions && height <= max_positions && width <= max_positions,
              "RoPE grid ", frames, "x", height, "x", width, " exceeds the ", max_positions,
              " positions per axis the model supports");
  const auto pairs = RopeAxisPairs(head_dim);
  const int64_t f = frames, h = height, w = width;
  auto af = AxisAngles(f, pairs[0], theta).view({f, 1, 1, pairs[0]}).expand({f, h, w, pairs[0]});
  auto ah = AxisAngles(h, pairs[1], theta).view({1, h, 1, pairs[1]}).expand({f, h, w, pairs[1]});
  auto aw = AxisAngles(w, pairs[2], theta).view({1, 1, w, pairs[2]}).expand({f, h, w, pairs[2]});
  return at::cat({af, ah, aw}, -1).reshape({f * h * w, head_dim / 2});  // [N, d/2]
}

RopeTable MakeRopeTable(int64_t head_dim, int64_t frames, int64_t height, int64_t width,
                        c10::Device device, int64_t max_positions) {
  auto angles = RopeAngles(head_dim, frames, height, width, kRopeTheta, max_positions);
  const int64_t n = angles.size(0);
  auto to_f32 = [&](const at::Tensor& t) {
    return t.to(at::kFloat).view({n, 1, head_dim / 2}).to(device).contiguous();  // [N, 1, d/2]
  };
  return {to_f32(angles.cos()), to_f32(angles.sin())};
}

torch::Tensor ApplyRope(const torch::Tensor& x, const RopeTable& table) {
  TORCH_CHECK(x.dim() == 4 && x.size(3) % 2 == 0, "ApplyRope expects [B, N, heads, head_dim]");
  TORCH_CHECK(x.size(1) == table.cos.size(0) && x.size(3) == 2 * table.cos.size(2),
              "ApplyRope: tokens/head_dim ", x.size(1), "/", x.size(3),
              " do not match the RoPE table ", table.cos.size(0), "/", 2 * table.cos.size(2));
  const int64_t half = x.size(3) / 2;
  auto pairs = x.unflatten(3, {half, 2});  // [B, N, H, d/2, 2]
  auto x0 = pairs.select(4, 0);            // [B, N, H, d/2] (even elements)
  auto x1 = pairs.select(4, 1);            // odd elements
  if (at::GradMode::is_enabled() && x.requires_grad()) {
    // out= kernels do not record autograd; training takes the out-of-place form.
    return at::stack({x0 * table.cos - x1 * table.sin, x0 * table.sin + x1 * table.cos}, 4)
        .flatten(3);  // [B, N, H, d]
  }
  auto out = at::empty_like(pairs, pairs.options().memory_format(at::MemoryFormat::Contiguous));
  auto o0 = out.select(4, 0);
  auto o1 = out.select(4, 1);
  // (x0 + i x1)(cos + i sin): written into the output halves without temporaries.
  at::mul_out(o0, x0, table.cos);
  o0.addcmul_(x1, table.sin, -1.0);
  at::mul_out(o1, x0, table.sin);
  o1.addcmul_(x1, table.cos);
  return out.flatten(3);  // [B, N, H, d]
}

RopeTable RopeCache::Get(int64_t frames, int64_t height, int64_t width, c10::Device device) {
  const Key key{frames, height, width, static_cast<int>(device.type()),
                static_cast<int>(device.index())};
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tables_.find(key);
    if (it != tables_.end()) return it->second;
  }
  // Built outside the lock; two threads racing on a new grid build it twice, harmlessly.
  RopeTable table = MakeRopeTable(head_dim_, frames, height, width, device, max_positions_);
  std::lock_guard<std::mutex> lock(mu_);
  if (tables_.size() >= capacity_) tables_.clear();
  tables_.emplace(key, table);
  return table;
}

}  // namespace linvideo::core::wan

#include "core/models/wan/dit_ops.h"

#include <ATen/ATen.h>

#include "kernels/gelu_tanh.h"
#include "kernels/torch_compat.h"

namespace linvideo::core::wan::dit {
bool CanMutateInPlace() { return !at::GradMode::is_enabled(); }

torch::Tensor GeluTanh(torch::Tensor x, bool fused) {
  if (fused) return CanMutateInPlace() ? kernels::GeluTanh_(x) : kernels::GeluTanh(x);
  return CanMutateInPlace() ? at::gelu_(x, "tanh") : at::gelu(x, "tanh");
}

torch::Tensor SinusoidalEmbedding(int64_t dim, const torch::Tensor& t) {
  TORCH_CHECK(dim % 2 == 0, "SinusoidalEmbedding: dim must be even, got ", dim);
  TORCH_CHECK(t.dim() == 1, "SinusoidalEmbedding expects timesteps [B], got ", t.sizes());
  const int64_t half = dim / 2;
  auto position = t.to(at::kDouble);  // [B]
  auto exponent = at::arange(half, position.options()).div(static_cast<double>(half)).neg();
  auto sinusoid = at::outer(position, at::pow(10000.0, exponent));     // [B, half]
  return at::cat({sinusoid.cos(), sinusoid.sin()}, 1).to(at::kFloat);  // [B, dim]
}

torch::Tensor Patchify(const torch::Tensor& x, const std::array<int64_t, 3>& patch) {
  TORCH_CHECK(x.dim() == 5, "Patchify expects [B, C, F, H, W], got ", x.sizes());
  const int64_t b = x.size(0), c = x.size(1);
  const auto [pt, ph, pw] = patch;
  TORCH_CHECK(x.size(2) % pt == 0 && x.size(3) % ph == 0 && x.size(4) % pw == 0, "latent F, H, W (",
              x.size(2), ", ", x.size(3), ", ", x.size(4),
              ") must be multiples of the patch size (", pt, ", ", ph, ", ", pw, ")");
  const int64_t f = x.size(2) / pt, h = x.size(3) / ph, w = x.size(4) / pw;
  return x.view({b, c, f, pt, h, ph, w, pw})
      .permute({0, 2, 4, 6, 1, 3, 5, 7})           // [B, F', H', W', C, pt, ph, pw]
      .reshape({b, f * h * w, c * pt * ph * pw});  // [B, N, C·pt·ph·pw]
}

torch::Tensor Unpatchify(const torch::Tensor& tokens, const std::array<int64_t, 3>& grid,
                         const std::array<int64_t, 3>& patch, int64_t channels) {
  const int64_t b = tokens.size(0);
  const auto [f, h, w] = grid;
  const auto [pt, ph, pw] = patch;
  TORCH_CHECK(
      tokens.dim() == 3 && tokens.size(1) == f * h * w && tokens.size(2) == pt * ph * pw * channels,
      "Unpatchify: tokens ", tokens.sizes(), " do not match grid ", f, "x", h, "x", w,
      " with patch ", pt, "x", ph, "x", pw, " and ", channels, " channels");
  return tokens.view({b, f, h, w, pt, ph, pw, channels})
      .permute({0, 7, 1, 4, 2, 5, 3, 6})  // [B, C, F', pt, H', ph, W', pw]
      .reshape({b, channels, f * pt, h * ph, w * pw});
}

torch::Tensor Linear(const torch::Tensor& x, const torch::nn::Linear& layer) {
  const at::Tensor& weight = layer->weight;  // [out, in]
  const int64_t in = weight.size(1), out = weight.size(0);
  // Under CPU autocast (bf16 training: fp32 weights) addmm casts its inputs to bf16 itself, so a
  // bf16 x (the FFN's GELU output, attention outputs) is passed as is: casting it to the fp32
  // weight's dtype first only made autocast cast it back, two copies of the activation forward
  // and two more backward, with bit-identical results (bf16 -> fp32 -> bf16 is exact).
  const bool autocast_casts =
      x.device().is_cpu() && weight.scalar_type() == at::kFloat && kernels::CpuAutocastEnabled();
  auto x2 =
      x.scalar_type() == weight.scalar_type() || autocast_casts ? x : x.to(weight.scalar_type());
  x2 = x2.reshape({-1, in});  // [M, in]
  at::Tensor y = layer->bias.defined() ? at::addmm(layer->bias, x2, weight.t())
                                       : at::mm(x2, weight.t());  // [M, out]
  auto sizes = x.sizes().vec();
  sizes.back() = out;
  return y.view(sizes);
}

torch::Tensor ModulatedLayerNorm(const torch::Tensor& x, const torch::Tensor& scale_plus_one,
                                 const torch::Tensor& shift, double eps) {
  const int64_t c = x.size(-1);
  auto normed = at::layer_norm(Float(x), {c}, {}, {}, eps);  // [B, N, C]
  if (CanMutateInPlace()) {
    return at::addcmul_out(normed, shift, normed, scale_plus_one);  // in place, one pass
  }
  return at::addcmul(shift, normed, scale_plus_one);
}

torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto xf = Float(x);
  const int64_t c = xf.size(-1);
  // rsqrt(mean(x²) + eps) from the L2 norm, without materialising x².
  auto inv = at::linalg_vector_norm(xf, 2, {-1}, /*keepdim=*/true)
                 .square()
                 .div(static_cast<double>(c))
                 .add(eps)
                 .rsqrt();  // [..., 1]
  auto y = at::mul(xf, inv);
  return CanMutateInPlace() ? y.mul_(weight) : y.mul(weight);
}

torch::Tensor GatedResidual(const torch::Tensor& x, const torch::Tensor& y,
                            const torch::Tensor& gate) {
  return at::addcmul(x, Float(y), gate);  // [B, N, C]
}

}  // namespace linvideo::core::wan::dit

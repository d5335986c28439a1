#include "core/models/wan/vae_modules.h"

#include <ATen/ATen.h>

#include <cmath>
#include <memory>

#include "kernels/softmax_attention.h"

namespace linvideo::core::wan::vae {
namespace {

// PyTorch's default conv init bound (kaiming_uniform with a = sqrt(5)): 1/sqrt(fan_in). Real
// weights are loaded from checkpoints; this only makes freshly created modules non-degenerate.
void InitUniform(torch::Tensor& w, torch::Tensor& b, int64_t fan_in) {
  torch::NoGradGuard no_grad;
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  w.uniform_(-bound, bound);
  b.uniform_(-bound, bound);
}

// Keeps the last `n` frames of x for the next chunk; a copy when x is longer, so the chunk's full
// activation is not kept alive by the cache.
torch::Tensor LastFrames(const torch::Tensor& x, int64_t n) {
  const int64_t t = x.size(2);
  return t > n ? x.narrow(2, t - n, n).clone() : x;
}

}  // namespace

torch::Tensor Conv3d(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                     at::IntArrayRef stride, at::IntArrayRef padding) {
  // LibTorch's CPU heuristic sends batch-1 convolutions with N·C·T·H <= 20480 (the latent-
  // resolution stages, chunk by chunk) to slow_conv3d, ~5x slower here than oneDNN. For
  // inference on fp32 CPU tensors call oneDNN directly; same arithmetic up to summation order.
  if (x.is_cpu() && x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat &&
      at::hasMKLDNN() && at::globalContext().userEnabledMkldnn() && !at::GradMode::is_enabled()) {
    return at::mkldnn_convolution(x.contiguous(), weight.contiguous(), bias, padding, stride,
                                  {1, 1, 1}, 1);
  }
  return at::conv3d(x, weight, bias, stride, padding);
}

FeatureCache::Slot& FeatureCache::Next() {
  if (next_ == slots_.size()) slots_.emplace_back();
  return slots_[next_++];
}

CausalConv3dImpl::CausalConv3dImpl(int64_t in, int64_t out, std::array<int64_t, 3> kernel,
                                   std::array<int64_t, 3> stride, std::array<int64_t, 3> padding)
    : stride_(stride), padding_(padding) {
  weight = register_parameter("weight", torch::empty({out, in, kernel[0], kernel[1], kernel[2]}));
  bias = register_parameter("bias", torch::empty({out}));
  InitUniform(weight, bias, in * kernel[0] * kernel[1] * kernel[2]);
}

torch::Tensor CausalConv3dImpl::forward(const torch::Tensor& x, const torch::Tensor& cache) const {
  int64_t pad_t = time_padding();
  std::vector<torch::Tensor> parts;  // [zero frames], [cached frames], x along time
  if (cache.defined() && pad_t > 0) pad_t -= cache.size(2);
  if (pad_t > 0) {
    // One cat writes only the pad frames; constant_pad_nd would fill the whole padded tensor.
    std::vector<int64_t> shape = x.sizes().vec();
    shape[2] = pad_t;
    parts.push_back(at::zeros(shape, x.options()));
  }
  if (cache.defined() && time_padding() > 0) parts.push_back(cache);
  torch::Tensor input = x;
  if (!parts.empty()) {
    parts.push_back(x);
    input = at::cat(parts, 2);  // [B, in, pad + n + T, H, W]
  }
  // Spatial padding is symmetric, so the convolution's own zero padding gives the same result as
  // an explicit pad without materialising the padded tensor.
  return Conv3d(input, weight, bias, {stride_[0], stride_[1], stride_[2]},
                {0, padding_[1], padding_[2]});  // [B, out, T', H', W']
}

torch::Tensor CachedConv(const CausalConv3dImpl& conv, const torch::Tensor& x,
                         FeatureCache* cache) {
  if (cache == nullptr) return conv.forward(x);
  FeatureCache::Slot& slot = cache->Next();
  const bool has_frames = slot.state == FeatureCache::Slot::State::kFrames;
  torch::Tensor keep = LastFrames(x, kCacheFrames);  // [B, C, <=2, H, W]
  if (keep.size(2) < kCacheFrames && has_frames) {
    const int64_t last = slot.frames.size(2) - 1;
    keep = at::cat({slot.frames.narrow(2, last, 1), keep}, 2);  // [B, C, 2, H, W]
  }
  torch::Tensor y = conv.forward(x, has_frames ? slot.frames : torch::Tensor());
  slot.state = FeatureCache::Slot::State::kFrames;
  slot.frames = std::move(keep);
  return y;
}

RmsNormImpl::RmsNormImpl(int64_t dim, bool images) : dim_(dim) {
  gamma =
      register_parameter("gamma", images ? torch::ones({dim, 1, 1}) : torch::ones({dim, 1, 1, 1}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) const {
  std::vector<int64_t> shape(x.dim() - 1, 1);
  shape[0] = dim_;
  // gamma·sqrt(dim) folded into one per-channel factor, broadcast over [B, dim, ...].
  torch::Tensor g = gamma.reshape(shape) * std::sqrt(static_cast<double>(dim_));
  // sqrt(sum of squares) over channels: F.normalize's norm, but the plain sum is a vectorised
  // outer reduction where linalg_vector_norm is several times slower here.
  torch::Tensor norm = at::mul(x, x).sum(1, /*keepdim=*/true).sqrt_();  // [B, 1, ...]
  if (at::GradMode::is_enabled()) return x / norm.clamp_min(1e-12) * g;
  // Inference: reuse the temporaries (autograd would need the overwritten values).
  return at::div(x, norm.clamp_min_(1e-12)).mul_(g);  // [B, dim, ...]
}

torch::Tensor NormSilu(const RmsNormImpl& norm, const torch::Tensor& x) {
  torch::Tensor y = norm.forward(x);
  if (at::GradMode::is_enabled()) return at::silu(y);
  at::silu_(y);
  return y;
}

Conv2dWeightsImpl::Conv2dWeightsImpl(int64_t in, int64_t out, int64_t kernel) {
  weight = register_parameter("weight", torch::empty({out, in, kernel, kernel}));
  bias = register_parameter("bias", torch::empty({out}));
  InitUniform(weight, bias, in * kernel * kernel);
}

ResidualBlockImpl::ResidualBlockImpl(int64_t in, int64_t out) {
  // Official layout: residual = Sequential(norm, SiLU, conv, norm, SiLU, Dropout, conv); only the
  // indices with parameters are registered.
  auto residual = register_module("residual", std::make_shared<torch::nn::Module>());
  norm1_ = residual->register_module("0", RmsNorm(in, /*images=*/false));
  conv1_ = residual->register_module(
      "2", CausalConv3d(in, out, std::array<int64_t, 3>{3, 3, 3}, std::array<int64_t, 3>{1, 1, 1},
                        std::array<int64_t, 3>{1, 1, 1}));
  norm2_ = residual->register_module("3", RmsNorm(out, /*images=*/false));
  conv2_ = residual->register_module(
      "6", CausalConv3d(out, out, std::array<int64_t, 3>{3, 3, 3}, std::array<int64_t, 3>{1, 1, 1},
                        std::array<int64_t, 3>{1, 1, 1}));
  if (in != out) {
    shortcut_ = register_module("shortcut", CausalConv3d(in, out, std::array<int64_t, 3>{1, 1, 1}));
  }
}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x, FeatureCache* cache) const {
  torch::Tensor h = shortcut_ ? shortcut_->forward(x) : x;  // [B, out, T, H, W]
  torch::Tensor y = NormSilu(*norm1_, x);                   // [B, in, T, H, W]
  y = CachedConv(*conv1_, y, cache);                        // [B, out, T, H, W]
  y = NormSilu(*norm2_, y);                                 // dropout: inference only
  y = CachedConv(*conv2_, y, cache);                        // [B, out, T, H, W]
  return y.add_(h);
}

AttentionBlockImpl::AttentionBlockImpl(int64_t dim) : dim_(dim) {
  norm_ = register_module("norm", RmsNorm(dim, /*images=*/true));
  to_qkv_ = register_module("to_qkv", Conv2dWeights(dim, 3 * dim, 1));
  proj_ = register_module("proj", Conv2dWeights(dim, dim, 1));
}

torch::Tensor AttentionBlockImpl::forward(const torch::Tensor& x) const {
  const int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
  torch::Tensor tokens = norm_
                             ->forward(x)                  // [B, C, T, H, W]
                             .permute({0, 2, 3, 4, 1})     // [B, T, H, W, C]
                             .reshape({b * t, h * w, c});  // [B·T, HW, C]
  // 1x1 convolutions are linear maps over channels.
  torch::Tensor qkv = at::linear(tokens, to_qkv_->weight.view({3 * c, c}), to_qkv_->bias);
  std::vector<torch::Tensor> parts = qkv.chunk(3, -1);  // 3 x [B·T, HW, C]
  torch::Tensor o;                                      // [B·T, HW, C]
  if (at::GradMode::is_enabled() && qkv.requires_grad()) {
    // SoftmaxAttention writes into preallocated outputs, which autograd cannot track; the plain
    // form keeps gradients (training through the VAE).
    torch::Tensor scores = at::matmul(parts[0], parts[1].transpose(1, 2))
                               .mul(1.0 / std::sqrt(static_cast<double>(c)));  // [B·T, HW, HW]
    o = at::matmul(at::softmax(scores, -1), parts[2]);
  } else {
    o = kernels::SoftmaxAttention(parts[0].unsqueeze(2), parts[1].unsqueeze(2),
                                  parts[2].unsqueeze(2))  // [B·T, HW, 1, C], memory-bounded
            .reshape({b * t, h * w, c});
  }
  o = at::linear(o, proj_->weight.view({c, c}), proj_->bias);
  o = o.view({b, t, h, w, c}).permute({0, 4, 1, 2, 3});  // [B, C, T, H, W]
  return at::add(x, o).contiguous();
}

ResampleImpl::ResampleImpl(int64_t dim, ResampleMode mode) : dim_(dim), mode_(mode) {
  const bool up = mode == ResampleMode::kUpsample2d || mode == ResampleMode::kUpsample3d;
  // Official resample = Sequential(Upsample | ZeroPad2d, Conv2d): the conv is index 1.
  auto resample = register_module("resample", std::make_shared<torch::nn::Module>());
  conv_ = resample->register_module("1", Conv2dWeights(dim, up ? dim / 2 : dim, 3));
  if (mode == ResampleMode::kUpsample3d) {
    time_conv_ =
        register_module("time_conv", CausalConv3d(dim, 2 * dim, std::array<int64_t, 3>{3, 1, 1},
                                                  std::array<int64_t, 3>{1, 1, 1},
                                                  std::array<int64_t, 3>{1, 0, 0}));
  } else if (mode == ResampleMode::kDownsample3d) {
    time_conv_ = register_module(
        "time_conv",
        CausalConv3d(dim, dim, std::array<int64_t, 3>{3, 1, 1}, std::array<int64_t, 3>{2, 1, 1}));
  }
}

torch::Tensor ResampleImpl::TemporalUpsample(const torch::Tensor& x,
                                             FeatureCache::Slot& slot) const {
  using State = FeatureCache::Slot::State;
  if (slot.state == State::kEmpty) {
    slot.state = State::kRepeat;  // first chunk: one frame in, one frame out
    return x;
  }
  const int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
  torch::Tensor keep = LastFrames(x, kCacheFrames);
  if (keep.size(2) < kCacheFrames) {
    // After the first chunk the official code caches zeros, not the first chunk's frame.
    torch::Tensor before = slot.state == State::kFrames
                               ? slot.frames.narrow(2, slot.frames.size(2) - 1, 1)
                               : at::zeros_like(keep);
    keep = at::cat({before, keep}, 2);  // [B, C, 2, H, W]
  }
  torch::Tensor y = time_conv_->forward(
      x, slot.state == State::kFrames ? slot.frames : torch::Tensor());  // [B, 2C, T, H, W]
  slot.state = State::kFrames;
  slot.frames = std::move(keep);
  // Channels [0, C) become frame 2i, [C, 2C) frame 2i+1.
  return y.view({b, 2, c, t, h, w})
      .permute({0, 2, 3, 1, 4, 5})
      .reshape({b, c, 2 * t, h, w});  // [B, C, 2T, H, W]
}

torch::Tensor ResampleImpl::TemporalDownsample(const torch::Tensor& x,
                                               FeatureCache::Slot& slot) const {
  using State = FeatureCache::Slot::State;
  const int64_t t = x.size(2);
  torch::Tensor last = x.narrow(2, t - 1, 1);  // [B, C, 1, H, W]
  if (slot.state == State::kEmpty) {
    slot.state = State::kFrames;  // first chunk passes through unchanged
    slot.frames = t > 1 ? last.clone() : last;
    return x;
  }
  torch::Tensor y = time_conv_->forward(at::cat({slot.frames, x}, 2));  // [B, C, (T-1)/2+1, H, W]
  slot.frames = t > 1 ? last.clone() : last;
  return y;
}

torch::Tensor ResampleImpl::forward(const torch::Tensor& x, FeatureCache* cache) const {
  torch::Tensor y = x;
  if (mode_ == ResampleMode::kUpsample3d && cache != nullptr) {
    y = TemporalUpsample(y, cache->Next());
  }
  // Per-frame 2D conv as a (1, 3, 3) conv3d: same arithmetic, no [B·T, C, H, W] permute copies.
  torch::Tensor w = conv_->weight.unsqueeze(2);  // [out, in, 1, 3, 3]
  if (mode_ == ResampleMode::kUpsample2d || mode_ == ResampleMode::kUpsample3d) {
    // nearest-exact at an integer factor 2 picks source index floor(i / 2), like nearest.
    y = at::upsample_nearest3d(y, {y.size(2), 2 * y.size(3), 2 * y.size(4)});  // [B,C,T,2H,2W]
    y = Conv3d(y, w, conv_->bias, {1, 1, 1}, {0, 1, 1});                       // [B,C/2,T,2H,2W]
  } else {
    y = at::constant_pad_nd(y, {0, 1, 0, 1}, 0);          // right/bottom zero pad
    y = Conv3d(y, w, conv_->bias, {1, 2, 2}, {0, 0, 0});  // [B, C, T, H/2, W/2]
  }
  if (mode_ == ResampleMode::kDownsample3d && cache != nullptr) {
    y = TemporalDownsample(y, cache->Next());
  }
  return y;
}

}  // namespace linvideo::core::wan::vae

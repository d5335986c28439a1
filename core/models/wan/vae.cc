#include "core/models/wan/vae.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/common/status.h"

namespace linvideo::core::wan {
namespace {

using vae::CachedConv;
using vae::CausalConv3d;
using vae::FeatureCache;
using vae::ResampleMode;
using Arr3 = std::array<int64_t, 3>;

CausalConv3d Conv3x3x3(int64_t in, int64_t out) {
  return CausalConv3d(in, out, Arr3{3, 3, 3}, Arr3{1, 1, 1}, Arr3{1, 1, 1});
}
CausalConv3d Conv1x1x1(int64_t in, int64_t out) { return CausalConv3d(in, out, Arr3{1, 1, 1}); }

std::shared_ptr<torch::nn::Module> Container(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

torch::Tensor RunStage(const std::vector<VaeStageLayer>& layers, torch::Tensor x,
                       FeatureCache* cache) {
  for (const VaeStageLayer& layer : layers) {
    x = layer.residual ? layer.residual->forward(x, cache) : layer.resample->forward(x, cache);
  }
  return x;
}

std::string ShapeString(const torch::Tensor& t) {
  return t.defined() ? c10::str(t.sizes()) : std::string("undefined");
}

// Empty when z is a valid latent batch, else the reason.
std::string LatentShapeError(const VaeConfig& c, const torch::Tensor& z) {
  if (!z.defined() || z.dim() != 5 || z.size(1) != c.z_dim || z.size(2) < 1 || z.size(3) < 1 ||
      z.size(4) < 1) {
    return absl::StrCat("VAE decode: latents must be [B, ", c.z_dim, ", F>=1, h>=1, w>=1], got ",
                        ShapeString(z));
  }
  return "";
}

std::string VideoShapeError(const VaeConfig& c, const torch::Tensor& x) {
  const int64_t rt = c.temporal_stride(), rs = c.spatial_stride();
  if (!x.defined() || x.dim() != 5 || x.size(1) != 3 || x.size(2) < 1 ||
      (x.size(2) - 1) % rt != 0 || x.size(3) < rs || x.size(3) % rs != 0 || x.size(4) < rs ||
      x.size(4) % rs != 0) {
    return absl::StrCat("VAE encode: video must be [B, 3, 1 + ", rt, "k, H, W] with H and W ",
                        "positive multiples of ", rs, ", got ", ShapeString(x));
  }
  return "";
}

}  // namespace

VaeEncoder3dImpl::VaeEncoder3dImpl(const VaeConfig& c) {
  const size_t stages = c.dim_mult.size();
  std::vector<int64_t> dims = {c.base_dim};
  for (int64_t m : c.dim_mult) dims.push_back(c.base_dim * m);

  conv1_ = register_module("conv1", Conv3x3x3(3, dims[0]));
  auto list = Container(*this, "downsamples");
  int64_t out = dims[0];
  for (size_t i = 0; i < stages; ++i) {
    int64_t in = dims[i];
    out = dims[i + 1];
    for (int64_t j = 0; j < c.num_res_blocks; ++j, in = out) {
      VaeStageLayer layer;
      layer.residual =
          list->register_module(std::to_string(layers_.size()), vae::ResidualBlock(in, out));
      layers_.push_back(layer);
    }
    if (i + 1 != stages) {
      VaeStageLayer layer;
      layer.resample = list->register_module(
          std::to_string(layers_.size()),
          vae::Resample(out, c.temperal_downsample[i] ? ResampleMode::kDownsample3d
                                                      : ResampleMode::kDownsample2d));
      layers_.push_back(layer);
    }
  }
  auto middle = Container(*this, "middle");
  mid0_ = middle->register_module("0", vae::ResidualBlock(out, out));
  mid1_ = middle->register_module("1", vae::AttentionBlock(out));
  mid2_ = middle->register_module("2", vae::ResidualBlock(out, out));
  auto head = Container(*this, "head");
  head_norm_ = head->register_module("0", vae::RmsNorm(out, /*images=*/false));
  head_conv_ = head->register_module("2", Conv3x3x3(out, 2 * c.z_dim));
}

torch::Tensor VaeEncoder3dImpl::forward(const torch::Tensor& x, FeatureCache* cache) const {
  torch::Tensor y = CachedConv(*conv1_, x, cache);  // [B, dim, T, H, W]
  y = RunStage(layers_, std::move(y), cache);       // [B, 4·dim, T', H/8, W/8]
  y = mid0_->forward(y, cache);
  y = mid1_->forward(y);
  y = mid2_->forward(y, cache);
  y = vae::NormSilu(*head_norm_, y);
  return CachedConv(*head_conv_, y, cache);  // [B, 2·z_dim, T', H/8, W/8]
}

VaeDecoder3dImpl::VaeDecoder3dImpl(const VaeConfig& c) {
  const size_t stages = c.dim_mult.size();
  std::vector<int64_t> dims = {c.base_dim * c.dim_mult.back()};
  for (auto it = c.dim_mult.rbegin(); it != c.dim_mult.rend(); ++it) {
    dims.push_back(c.base_dim * *it);
  }
  conv1_ = register_module("conv1", Conv3x3x3(c.z_dim, dims[0]));
  auto middle = Container(*this, "middle");
  mid0_ = middle->register_module("0", vae::ResidualBlock(dims[0], dims[0]));
  mid1_ = middle->register_module("1", vae::AttentionBlock(dims[0]));
  mid2_ = middle->register_module("2", vae::ResidualBlock(dims[0], dims[0]));

  auto list = Container(*this, "upsamples");
  int64_t out = dims[0];
  for (size_t i = 0; i < stages; ++i) {
    // Every upsampler halves the channels, so stages after the first start at half width.
    int64_t in = i > 0 ? dims[i] / 2 : dims[i];
    out = dims[i + 1];
    for (int64_t j = 0; j < c.num_res_blocks + 1; ++j, in = out) {
      VaeStageLayer layer;
      layer.residual =
          list->register_module(std::to_string(layers_.size()), vae::ResidualBlock(in, out));
      layers_.push_back(layer);
    }
    if (i + 1 != stages) {
      // The decoder mirrors the encoder: temporal upsampling where it downsampled, reversed.
      const bool temporal = c.temperal_downsample[stages - 2 - i];
      VaeStageLayer layer;
      layer.resample = list->register_module(
          std::to_string(layers_.size()),
          vae::Resample(out, temporal ? ResampleMode::kUpsample3d : ResampleMode::kUpsample2d));
      layers_.push_back(layer);
    }
  }
  auto head = Container(*this, "head");
  head_norm_ = head->register_module("0", vae::RmsNorm(out, /*images=*/false));
  head_conv_ = head->register_module("2", Conv3x3x3(out, 3));
}

torch::Tensor VaeDecoder3dImpl::forward(const torch::Tensor& x, FeatureCache* cache) const {
  torch::Tensor y = CachedConv(*conv1_, x, cache);  // [B, 4·dim, F, h, w]
  y = mid0_->forward(y, cache);
  y = mid1_->forward(y);
  y = mid2_->forward(y, cache);
  y = RunStage(layers_, std::move(y), cache);  // [B, dim, F', 8h, 8w]
  y = vae::NormSilu(*head_norm_, y);
  return CachedConv(*head_conv_, y, cache);  // [B, 3, F', 8h, 8w]
}

WanVaeImpl::WanVaeImpl(const VaeConfig& config) : config_(config) {
  encoder_ = register_module("encoder", VaeEncoder3d(config));
  conv1_ = register_module("conv1", Conv1x1x1(2 * config.z_dim, 2 * config.z_dim));
  conv2_ = register_module("conv2", Conv1x1x1(config.z_dim, config.z_dim));
  decoder_ = register_module("decoder", VaeDecoder3d(config));
  std::vector<float> mean(config.latents_mean.begin(), config.latents_mean.end());
  std::vector<float> std(config.latents_std.begin(), config.latents_std.end());
  mean_ = torch::tensor(mean, torch::kFloat);
  // The official code keeps scale = [mean, 1/std] in fp32 and divides by 1/std when decoding.
  inv_std_ = 1.0 / torch::tensor(std, torch::kFloat);
}

torch::Tensor WanVaeImpl::Normalize(const torch::Tensor& mu) const {
  auto view = [&](const torch::Tensor& s) {  // [1, z_dim, 1, ...]
    std::vector<int64_t> shape(mu.dim(), 1);
    shape[1] = config_.z_dim;
    return s.to(mu.options()).view(shape);
  };
  return (mu - view(mean_)) * view(inv_std_);
}

torch::Tensor WanVaeImpl::Denormalize(const torch::Tensor& z) const {
  auto view = [&](const torch::Tensor& s) {
    std::vector<int64_t> shape(z.dim(), 1);
    shape[1] = config_.z_dim;
    return s.to(z.options()).view(shape);
  };
  return z / view(inv_std_) + view(mean_);
}

int64_t WanVaeImpl::DecodedFrames(int64_t latent_frames) const {
  return 1 + config_.temporal_stride() * (latent_frames - 1);
}

int64_t WanVaeImpl::LatentFrames(int64_t video_frames) const {
  return (video_frames - 1) / config_.temporal_stride() + 1;
}

c10::ScalarType WanVaeImpl::dtype() const { return conv2_->weight.scalar_type(); }

torch::Tensor WanVaeImpl::Decode(const torch::Tensor& z) const {
  torch::Tensor video = DecodeUnclamped(z);
  return at::GradMode::is_enabled() ? video.clamp(-1.0, 1.0) : video.clamp_(-1.0, 1.0);
}

torch::Tensor WanVaeImpl::DecodeUnclamped(const torch::Tensor& z) const {
  const std::string error = LatentShapeError(config_, z);
  TORCH_CHECK(error.empty(), error);
  const int64_t frames = z.size(2);
  // z·std + mean in fp32 whatever the VAE's precision (bf16 would round the latents before the
  // scale), then conv2 and the decoder in the VAE's dtype.
  torch::Tensor x =
      conv2_->forward(Denormalize(z.to(torch::kFloat)).to(dtype()));  // [B, z_dim, F, h, w]
  FeatureCache cache;
  torch::Tensor video;  // [B, 3, 1 + 4(F-1), 8h, 8w], allocated once the first frame is known
  int64_t offset = 0;
  for (int64_t i = 0; i < frames; ++i) {
    cache.Rewind();
    torch::Tensor chunk = decoder_->forward(x.narrow(2, i, 1), &cache);  // [B, 3, 1|4, 8h, 8w]
    if (i == 0) {
      video = at::empty(
          {chunk.size(0), chunk.size(1), DecodedFrames(frames), chunk.size(3), chunk.size(4)},
          chunk.options());
    }
    TORCH_CHECK(offset + chunk.size(2) <= video.size(2), "VAE decode produced more frames than ",
                video.size(2));
    video.narrow(2, offset, chunk.size(2)).copy_(chunk);
    offset += chunk.size(2);
  }
  TORCH_CHECK(offset == video.size(2), "VAE decode produced ", offset, " frames, expected ",
              video.size(2));
  return video;
}

VaeLatentDistribution WanVaeImpl::EncodeDistribution(const torch::Tensor& video) const {
  const std::string error = VideoShapeError(config_, video);
  TORCH_CHECK(error.empty(), error);
  const int64_t stride = config_.temporal_stride();
  const int64_t chunks = LatentFrames(video.size(2));
  FeatureCache cache;
  std::vector<torch::Tensor> outs;
  outs.reserve(chunks);
  for (int64_t i = 0; i < chunks; ++i) {
    cache.Rewind();
    // First frame alone, then `stride` frames per chunk: one latent frame each.
    torch::Tensor part =
        i == 0 ? video.narrow(2, 0, 1) : video.narrow(2, 1 + stride * (i - 1), stride);
    outs.push_back(encoder_->forward(part, &cache));  // [B, 2·z_dim, 1, H/8, W/8]
  }
  torch::Tensor stats = conv1_->forward(at::cat(outs, 2));  // [B, 2·z_dim, F, H/8, W/8]
  std::vector<torch::Tensor> halves = stats.chunk(2, 1);
  return {halves[0], halves[1]};
}

torch::Tensor WanVaeImpl::Encode(const torch::Tensor& video) const {
  return Normalize(EncodeDistribution(video).mu);
}

absl::StatusOr<WanVae> CreateWanVae(const VaeConfig& config) {
  LV_RETURN_IF_ERROR(config.Validate());
  return TorchCall("creating the Wan VAE", [&] { return WanVae(config); });
}

absl::StatusOr<torch::Tensor> DecodeLatents(const WanVae& vae, const torch::Tensor& z) {
  if (std::string error = LatentShapeError(vae->config(), z); !error.empty()) {
    return absl::InvalidArgumentError(error);
  }
  return TorchCall("VAE decode", [&] { return vae->Decode(z); });
}

absl::StatusOr<torch::Tensor> EncodeVideo(const WanVae& vae, const torch::Tensor& video) {
  if (std::string error = VideoShapeError(vae->config(), video); !error.empty()) {
    return absl::InvalidArgumentError(error);
  }
  return TorchCall("VAE encode", [&] { return vae->Encode(video); });
}

}  // namespace linvideo::core::wan

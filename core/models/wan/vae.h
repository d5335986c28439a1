#pragma once
// The Wan 2.1 video VAE: a 3D causal VAE with 4x temporal and 8x spatial compression to z_dim (16)
// latent channels, numerically following the official wan/modules/vae.py (WanVAE_ + WanVAE).
//
// Decode runs the decoder one latent frame at a time and Encode runs the encoder on the first frame
// alone, then on chunks of 4 frames, each with a per-call causal feature cache, exactly as the
// official code does (the chunking changes the result, so it is part of the model, not an
// optimisation). Parameter names are the official ones (encoder.*, conv1, conv2, decoder.*); see
// vae_key_map.h for diffusers checkpoints.
//
// Thread safety: Encode/Decode/... are const, allocate their cache per call and never mutate the
// module, so any number of threads may call them at once on one WanVae. Loading weights or moving
// the module (to(), LoadStateDict) must not overlap with calls. Gradients flow through every method
// (wrap calls in InferenceMode / NoGradGuard when serving).

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/models/wan/vae_config.h"
#include "core/models/wan/vae_modules.h"

namespace linvideo::core::wan {

// One entry of the encoder's `downsamples` / decoder's `upsamples` list (exactly one is set).
struct VaeStageLayer {
  vae::ResidualBlock residual{nullptr};
  vae::Resample resample{nullptr};
};

// conv1, downsamples.N, middle.{0,1,2}, head.{0,2}: video [B, 3, T, H, W] -> [B, 2·z_dim, ...].
class VaeEncoder3dImpl : public torch::nn::Module {
 public:
  explicit VaeEncoder3dImpl(const VaeConfig& config);
  // One chunk; `cache` null runs without causal state (the official non-cached path).
  torch::Tensor forward(const torch::Tensor& x, vae::FeatureCache* cache) const;

  const std::vector<VaeStageLayer>& layers() const { return layers_; }

 private:
  vae::CausalConv3d conv1_{nullptr};
  std::vector<VaeStageLayer> layers_;
  vae::ResidualBlock mid0_{nullptr}, mid2_{nullptr};
  vae::AttentionBlock mid1_{nullptr};
  vae::RmsNorm head_norm_{nullptr};
  vae::CausalConv3d head_conv_{nullptr};
};
TORCH_MODULE(VaeEncoder3d);

// conv1, middle.{0,1,2}, upsamples.N, head.{0,2}: latent [B, z_dim, F, h, w] -> [B, 3, ...].
class VaeDecoder3dImpl : public torch::nn::Module {
 public:
  explicit VaeDecoder3dImpl(const VaeConfig& config);
  torch::Tensor forward(const torch::Tensor& x, vae::FeatureCache* cache) const;

  const std::vector<VaeStageLayer>& layers() const { return layers_; }

 private:
  vae::CausalConv3d conv1_{nullptr};
  vae::ResidualBlock mid0_{nullptr}, mid2_{nullptr};
  vae::AttentionBlock mid1_{nullptr};
  std::vector<VaeStageLayer> layers_;
  vae::RmsNorm head_norm_{nullptr};
  vae::CausalConv3d head_conv_{nullptr};
};
TORCH_MODULE(VaeDecoder3d);

// Posterior of the encoder, unnormalised (the VAE's own latent space): [B, z_dim, F, H/8, W/8].
struct VaeLatentDistribution {
  torch::Tensor mu;
  torch::Tensor logvar;
};

class WanVaeImpl : public torch::nn::Module {
 public:
  // Prefer CreateWanVae (validates the config). Parameters are randomly initialised.
  explicit WanVaeImpl(const VaeConfig& config);

  const VaeConfig& config() const { return config_; }
  // The weights' dtype: what Decode expects its latents in.
  c10::ScalarType dtype() const;

  // Normalised latents z [B, z_dim, F, h, w] -> video [B, 3, 1 + 4·(F−1), 8h, 8w] in [-1, 1]
  // (official WanVAE.decode: z·std + mean, conv2, causal per-frame decoding, clamp).
  torch::Tensor Decode(const torch::Tensor& z) const;
  // Decode without the final clamp (training: a clamped output has no gradient where it
  // saturates, so a pixel pushed past ±1 could never come back).
  torch::Tensor DecodeUnclamped(const torch::Tensor& z) const;
  // Video [B, 3, 1 + 4k, H, W] (values in [-1, 1], H and W multiples of 8) -> normalised mu
  // [B, z_dim, 1 + k, H/8, W/8] (official WanVAE.encode).
  torch::Tensor Encode(const torch::Tensor& video) const;
  // As Encode, but the unnormalised mean and log-variance (for KL terms / sampling).
  VaeLatentDistribution EncodeDistribution(const torch::Tensor& video) const;

  // (mu − mean) / std per channel, and its inverse; [B, z_dim, ...].
  torch::Tensor Normalize(const torch::Tensor& mu) const;
  torch::Tensor Denormalize(const torch::Tensor& z) const;

  int64_t DecodedFrames(int64_t latent_frames) const;  // 1 + 4·(F−1)
  int64_t LatentFrames(int64_t video_frames) const;    // (T−1)/4 + 1

 private:
  VaeConfig config_;
  VaeEncoder3d encoder_{nullptr};
  vae::CausalConv3d conv1_{nullptr};  // encoder output -> (mu, logvar)
  vae::CausalConv3d conv2_{nullptr};  // latent -> decoder input
  VaeDecoder3d decoder_{nullptr};
  torch::Tensor mean_;     // [z_dim] fp32, not a parameter (not in checkpoints)
  torch::Tensor inv_std_;  // [z_dim] fp32: 1/std, as the official scale[1]
};
TORCH_MODULE(WanVae);

// Validates `config` and builds a randomly initialised VAE on the CPU in fp32 (load weights with
// LoadWanVaeWeights, vae_key_map.h). INVALID_ARGUMENT for a bad config.
absl::StatusOr<WanVae> CreateWanVae(const VaeConfig& config);

// Status-returning wrappers of Decode/Encode for callers at the core boundary (shape errors become
// INVALID_ARGUMENT instead of exceptions).
absl::StatusOr<torch::Tensor> DecodeLatents(const WanVae& vae, const torch::Tensor& z);
absl::StatusOr<torch::Tensor> EncodeVideo(const WanVae& vae, const torch::Tensor& video);

}  // namespace linvideo::core::wan

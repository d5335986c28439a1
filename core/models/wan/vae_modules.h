#pragma once
// Building blocks of the Wan 2.1 video VAE (official wan/modules/vae.py semantics and parameter
// names): causal 3D convolution, channel RMS norm, residual block, per-frame attention block and
// the spatial/temporal resamplers.
//
// Causal decoding/encoding runs chunk by chunk; the frames a causal convolution needs from earlier
// chunks live in a FeatureCache that the caller creates per Encode/Decode call. Modules never
// mutate their own state in forward(), so one module may serve several threads at once as long as
// each thread uses its own FeatureCache.
//
// Tensors are [B, C, T, H, W], contiguous channels-first. Per-frame 2D convolutions (resamplers)
// run as conv3d with a (1, kh, kw) kernel over the same storage, so no [B·T, C, H, W] copies are
// made.

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <array>
#include <cstdint>
#include <vector>

namespace linvideo::core::wan::vae {

// Frames of each causal convolution's input kept for the next chunk (official CACHE_T).
inline constexpr int64_t kCacheFrames = 2;

// Per-call causal state: one slot per cached convolution / temporal resampler, visited in a fixed
// order on every chunk (call Rewind() before each chunk). Not thread-safe; one per call.
class FeatureCache {
 public:
  struct Slot {
    enum class State {
      kEmpty,   // not visited yet (first chunk)
      kRepeat,  // upsample3d saw the first chunk and skipped its temporal doubling ('Rep')
      kFrames,  // `frames` holds the previous chunk's last input frames
    };
    State state = State::kEmpty;
    torch::Tensor frames;  // [B, C, <=kCacheFrames, H, W]
  };

  Slot& Next();
  void Rewind() { next_ = 0; }
  size_t size() const { return slots_.size(); }

 private:
  std::vector<Slot> slots_;
  size_t next_ = 0;
};

// Conv3d whose time padding is all on the past side (2·padding_t zero frames, or cached frames) and
// whose spatial padding is symmetric. Parameters: weight [out, in, kt, kh, kw], bias [out].
class CausalConv3dImpl : public torch::nn::Module {
 public:
  CausalConv3dImpl(int64_t in, int64_t out, std::array<int64_t, 3> kernel,
                   std::array<int64_t, 3> stride = {1, 1, 1},
                   std::array<int64_t, 3> padding = {0, 0, 0});
  // x: [B, in, T, H, W]; cache: undefined or [B, in, n, H, W], the frames just before x (used only
  // when the convolution pads time). Returns [B, out, T', H', W'].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cache = {}) const;

  int64_t time_padding() const { return 2 * padding_[0]; }

  torch::Tensor weight;
  torch::Tensor bias;

 private:
  std::array<int64_t, 3> stride_;
  std::array<int64_t, 3> padding_;
};
TORCH_MODULE(CausalConv3d);

// at::conv3d, routed to oneDNN for fp32 CPU inference (see the .cc for why).
torch::Tensor Conv3d(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                     at::IntArrayRef stride, at::IntArrayRef padding);

// The official cached-conv step: runs `conv` on x after the slot's frames, then stores x's last
// kCacheFrames frames (prepending the previous chunk's last frame when x has only one). Without a
// cache this is conv(x). The stored frames alias x: callers must not modify x in place afterwards.
torch::Tensor CachedConv(const CausalConv3dImpl& conv, const torch::Tensor& x, FeatureCache* cache);

// x / max(||x||₂ over channels, 1e-12) · sqrt(dim) · gamma (F.normalize semantics).
// gamma: [dim, 1, 1, 1] (images=false) or [dim, 1, 1] (images=true); both broadcast over any
// [B, dim, ...] input.
class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t dim, bool images);
  torch::Tensor forward(const torch::Tensor& x) const;  // [B, dim, ...] -> same

  torch::Tensor gamma;

 private:
  int64_t dim_;
};
TORCH_MODULE(RmsNorm);

// SiLU(norm(x)), the activation applied in place on the norm's fresh output.
torch::Tensor NormSilu(const RmsNormImpl& norm, const torch::Tensor& x);

// Weights of a 2D convolution (official nn.Conv2d parameters): weight [out, in, kh, kw], bias
// [out].
class Conv2dWeightsImpl : public torch::nn::Module {
 public:
  Conv2dWeightsImpl(int64_t in, int64_t out, int64_t kernel);
  torch::Tensor weight;
  torch::Tensor bias;
};
TORCH_MODULE(Conv2dWeights);

// residual: RMS norm, SiLU, causal 3x3x3 conv, RMS norm, SiLU, (dropout), causal 3x3x3 conv;
// shortcut: causal 1x1x1 conv when in != out. Names: residual.{0,2,3,6}.*, shortcut.*.
class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x,
                        FeatureCache* cache) const;  // [B,in,T,H,W]->[B,out,T,H,W]

 private:
  RmsNorm norm1_{nullptr}, norm2_{nullptr};
  CausalConv3d conv1_{nullptr}, conv2_{nullptr}, shortcut_{nullptr};
};
TORCH_MODULE(ResidualBlock);

// Single-head self-attention over the H·W positions of each frame (no mixing across time).
// Names: norm.gamma, to_qkv.{weight,bias} (1x1 conv, 3·dim outputs), proj.{weight,bias}.
class AttentionBlockImpl : public torch::nn::Module {
 public:
  explicit AttentionBlockImpl(int64_t dim);
  torch::Tensor forward(const torch::Tensor& x) const;  // [B, dim, T, H, W] -> same

 private:
  int64_t dim_;
  RmsNorm norm_{nullptr};
  Conv2dWeights to_qkv_{nullptr}, proj_{nullptr};
};
TORCH_MODULE(AttentionBlock);

enum class ResampleMode { kUpsample2d, kUpsample3d, kDownsample2d, kDownsample3d };

// Spatial 2x up/down sampling per frame (resample.1: 3x3 conv; up halves the channels), plus for
// the 3d modes a temporal step (time_conv):
//  - upsample3d: causal (3,1,1) conv to 2·dim channels, interleaved into 2x the frames. The first
//    chunk is passed through without temporal doubling (official 'Rep' marker); the second chunk
//    pads with zeros instead of reusing the first chunk's frames.
//  - downsample3d: (3,1,1) stride-2 conv over [last frame of the previous chunk, x]; the first
//    chunk passes through unchanged.
// Without a cache the temporal step is skipped, as in the official code.
class ResampleImpl : public torch::nn::Module {
 public:
  ResampleImpl(int64_t dim, ResampleMode mode);
  torch::Tensor forward(const torch::Tensor& x, FeatureCache* cache) const;  // [B, dim, T, H, W]

  ResampleMode mode() const { return mode_; }

 private:
  torch::Tensor TemporalUpsample(const torch::Tensor& x, FeatureCache::Slot& slot) const;
  torch::Tensor TemporalDownsample(const torch::Tensor& x, FeatureCache::Slot& slot) const;

  int64_t dim_;
  ResampleMode mode_;
  Conv2dWeights conv_{nullptr};
  CausalConv3d time_conv_{nullptr};
};
TORCH_MODULE(Resample);

}  // namespace linvideo::core::wan::vae

#pragma once
// WanModel: the Wan 2.1 text-to-video diffusion transformer (DiT), numerically the official
// wan/modules/model.py WanModel (t2v). Its state dict has the official parameter names:
//   patch_embedding.{weight,bias}        Conv3d(in_dim, dim, kernel = stride = patch_size)
//   text_embedding.{0,2}.{weight,bias}   Linear(text_dim, dim), GELU(tanh), Linear(dim, dim)
//   time_embedding.{0,2}.{weight,bias}   Linear(freq_dim, dim), SiLU, Linear(dim, dim)
//   time_projection.1.{weight,bias}      SiLU, Linear(dim, 6·dim)
//   blocks.N.*                           see dit_block.h
//   head.head.{weight,bias}, head.modulation
// (load diffusers-named weights through dit_key_map.h first).
//
// Usage:
//   LV_ASSIGN_OR_RETURN(WanModel model, CreateWanModel(config));
//   LV_RETURN_IF_ERROR(io::LoadStateDict(*model, weights));
//   LV_RETURN_IF_ERROR(model->ToRuntime({device, dtype}));
//   torch::InferenceMode guard;                      // the caller's choice (not for training)
//   auto v = model->forward(x, t, context);          // or PrepareText once + Denoise per step
//
// Threading: after loading and ToRuntime, forward/PrepareText/Denoise only read the module, so
// concurrent calls are safe (the RoPE table cache is internally locked). ToRuntime and weight
// loading must not overlap with forwards.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/attention/attention.h"
#include "core/common/runtime.h"
#include "core/models/wan/dit_block.h"
#include "core/models/wan/rope.h"
#include "core/models/wan/wan_config.h"

namespace linvideo::core::wan {

// Everything the DiT derives from the text alone; it is the same for every denoising step of a
// request, so a sampler computes it once (PrepareText) and reuses it (Denoise).
struct WanTextState {
  torch::Tensor context;  // [B, text_len, dim] embedded, zero-padded text
  // Per block: cross-attention key (fp32) and value (runtime dtype), [B, text_len, heads,
  // head_dim].
  std::vector<std::pair<torch::Tensor, torch::Tensor>> cross_kv;
  int64_t batch() const { return context.defined() ? context.size(0) : 0; }
};

// Rows [begin, end) of a prepared text state (views: no copy).
WanTextState SliceTextState(const WanTextState& text, int64_t begin, int64_t end);
// The states' rows stacked along the batch, in order (a copy; a single state is returned as is):
// how a batch of requests, each with its text prepared once, runs as one Denoise.
WanTextState ConcatTextStates(const std::vector<const WanTextState*>& parts);

class WanModelImpl : public torch::nn::Module {
 public:
  // `config` must be valid (Validate()); `cores` holds one attention core per layer, or is empty
  // to build them with attention::MakeAttentionCore (throws c10::Error if a kind is unavailable).
  // Prefer CreateWanModel, which returns errors as Status.
  explicit WanModelImpl(const WanConfig& config,
                        std::vector<std::shared_ptr<attention::AttentionCoreImpl>> cores = {});

  const WanConfig& config() const { return config_; }
  // Dtype of the large matmuls (fp32 or bf16) and the device of the parameters.
  c10::ScalarType compute_dtype() const;
  c10::Device device() const;

  // Moves the parameters to `options.device` and stores the large matmul weights (patch and text
  // embeddings, attention projections, FFN) in `options.dtype` (fp32 or bf16); norms, modulation,
  // the time embedding/projection and the head stay fp32 as under the official autocast.
  absl::Status ToRuntime(const DeviceOptions& options);

  // GELU(tanh) implementation of the text embedding and every FFN: true (default) for
  // kernels::GeluTanh, false for LibTorch's at::gelu (bit-compatible with models trained before
  // the kernel existed; see dit::GeluTanh). Set before use, not during a forward.
  void SetFusedGelu(bool fused);
  bool fused_gelu() const { return fused_gelu_; }

  // x [B, in_dim, F, H, W] (F, H, W multiples of patch_size), t [B] or [1] timesteps (0..1000,
  // float), context [B, L, text_dim] with L <= text_len -> [B, out_dim, F, H, W] float32.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t,
                        const torch::Tensor& context);

  // context [B, L, text_dim], L <= text_len (zero-padded to text_len, as the official code).
  WanTextState PrepareText(const torch::Tensor& context);
  // forward() with the text part precomputed; text.batch() must equal x's batch.
  torch::Tensor Denoise(const torch::Tensor& x, const torch::Tensor& t, const WanTextState& text);

  // t [B] -> (e [B, dim], e0 [B, 6, dim]), both fp32.
  std::pair<torch::Tensor, torch::Tensor> TimeEmbedding(const torch::Tensor& t);

  // Submodules with the official names.
  torch::nn::Conv3d patch_embedding{nullptr};
  torch::nn::Sequential text_embedding{nullptr};
  torch::nn::Sequential time_embedding{nullptr};
  torch::nn::Sequential time_projection{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  WanHead head{nullptr};

 private:
  WanConfig config_;
  bool fused_gelu_ = true;
  std::vector<WanAttentionBlock> block_list_;  // typed views of `blocks`
  torch::nn::Linear text_in_{nullptr}, text_out_{nullptr};
  torch::nn::Linear time_in_{nullptr}, time_out_{nullptr}, time_proj_{nullptr};
  std::unique_ptr<RopeCache> rope_cache_;
};
TORCH_MODULE(WanModel);

// Validates `config` and builds a randomly initialised model (LibTorch default init; modulation
// randn/sqrt(dim) as the official code). INVALID_ARGUMENT for a bad config, UNIMPLEMENTED for an
// attention kind not compiled in.
absl::StatusOr<WanModel> CreateWanModel(const WanConfig& config);

}  // namespace linvideo::core::wan

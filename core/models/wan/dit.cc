#include "core/models/wan/dit.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>

#include "absl/strings/str_cat.h"
#include "core/common/status.h"
#include "core/models/wan/dit_ops.h"

namespace linvideo::core::wan {
namespace {

using dit::Float;
using dit::Linear;
using dit::Patchify;
using dit::SinusoidalEmbedding;
using dit::Unpatchify;

}  // namespace

WanModelImpl::WanModelImpl(const WanConfig& config,
                           std::vector<std::shared_ptr<attention::AttentionCoreImpl>> cores)
    : config_(config),
      rope_cache_(std::make_unique<RopeCache>(config.head_dim(), config.rope_max_seq_len)) {
  const absl::Status valid = config.Validate();
  TORCH_CHECK(valid.ok(), std::string(valid.message()));
  const int64_t dim = config.dim;
  const auto& p = config.patch_size;

  patch_embedding = register_module(
      "patch_embedding",
      torch::nn::Conv3d(torch::nn::Conv3dOptions(config.in_dim, dim, {p[0], p[1], p[2]})
                            .stride({p[0], p[1], p[2]})));
  text_in_ = torch::nn::Linear(config.text_dim, dim);
  text_out_ = torch::nn::Linear(dim, dim);
  text_embedding = register_module(
      "text_embedding",
      torch::nn::Sequential(text_in_, torch::nn::GELU(torch::nn::GELUOptions().approximate("tanh")),
                            text_out_));
  time_in_ = torch::nn::Linear(config.freq_dim, dim);
  time_out_ = torch::nn::Linear(dim, dim);
  time_embedding = register_module("time_embedding",
                                   torch::nn::Sequential(time_in_, torch::nn::SiLU(), time_out_));
  time_proj_ = torch::nn::Linear(dim, 6 * dim);
  time_projection =
      register_module("time_projection", torch::nn::Sequential(torch::nn::SiLU(), time_proj_));

  if (cores.empty()) {
    for (int64_t i = 0; i < config.num_layers; ++i) {
      auto core = attention::MakeAttentionCore(
          {config.attention_kinds[i], config.num_heads, config.head_dim()});
      TORCH_CHECK(core.ok(), "layer ", i, ": ", std::string(core.status().message()));
      cores.push_back(*std::move(core));
    }
  }
  TORCH_CHECK(static_cast<int64_t>(cores.size()) == config.num_layers, "WanModel needs ",
              config.num_layers, " attention cores, got ", cores.size());
  const WanBlockOptions block_options{
      dim, config.ffn_dim, config.num_heads, config.qk_norm, config.cross_attn_norm, config.eps};
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (auto& core : cores) {
    block_list_.push_back(WanAttentionBlock(block_options, std::move(core)));
    blocks->push_back(block_list_.back());
  }
  head = register_module("head", WanHead(dim, config.patch_volume() * config.out_dim, config.eps));
}

void WanModelImpl::SetFusedGelu(bool fused) {
  fused_gelu_ = fused;
  for (auto& block : block_list_) block->set_fused_gelu(fused);
}

c10::ScalarType WanModelImpl::compute_dtype() const {
  return patch_embedding->weight.scalar_type();
}

c10::Device WanModelImpl::device() const { return patch_embedding->weight.device(); }

absl::Status WanModelImpl::ToRuntime(const DeviceOptions& options) {
  if (options.dtype != at::kFloat && options.dtype != at::kBFloat16) {
    return absl::InvalidArgumentError(absl::StrCat("DiT runtime dtype ", DtypeName(options.dtype),
                                                   " is not supported; allowed: fp32, bf16"));
  }
  return TorchCall("WanModel::ToRuntime", [&] {
    to(options.device, at::kFloat);
    // The matmul-heavy layers run in the runtime dtype; everything else stays fp32.
    patch_embedding->to(options.dtype);
    text_in_->to(options.dtype);
    text_out_->to(options.dtype);
    for (auto& block : block_list_) {
      for (auto* proj : {static_cast<WanAttentionProjections*>(block->self_attn.get()),
                         static_cast<WanAttentionProjections*>(block->cross_attn.get())}) {
        for (torch::nn::Linear linear : {proj->q, proj->k, proj->v, proj->o})
          linear->to(options.dtype);
      }
      block->ffn->to(options.dtype);
      block->self_attn->attn_core->to(options.dtype);
    }
  });
}

std::pair<torch::Tensor, torch::Tensor> WanModelImpl::TimeEmbedding(const torch::Tensor& t) {
  auto sinusoid = SinusoidalEmbedding(config_.freq_dim, t).to(device());     // [B, freq_dim]
  auto e = Linear(at::silu(Linear(sinusoid, time_in_)), time_out_);          // [B, dim]
  auto e0 = Linear(at::silu(e), time_proj_).unflatten(1, {6, config_.dim});  // [B, 6, dim]
  return {Float(e), Float(e0)};
}

WanTextState SliceTextState(const WanTextState& text, int64_t begin, int64_t end) {
  WanTextState out;
  out.context = text.context.slice(0, begin, end);  // [end - begin, text_len, dim]
  out.cross_kv.reserve(text.cross_kv.size());
  for (const auto& [k, v] : text.cross_kv)
    out.cross_kv.emplace_back(k.slice(0, begin, end), v.slice(0, begin, end));
  return out;
}

WanTextState ConcatTextStates(const std::vector<const WanTextState*>& parts) {
  TORCH_CHECK(!parts.empty(), "ConcatTextStates needs at least one text state");
  if (parts.size() == 1) return *parts[0];
  const size_t layers = parts[0]->cross_kv.size();
  std::vector<torch::Tensor> rows, keys, values;
  WanTextState out;
  for (const WanTextState* p : parts) {
    TORCH_CHECK(p->cross_kv.size() == layers, "text states of one batch must come from one model");
    rows.push_back(p->context);
  }
  out.context = at::cat(rows);  // [sum B, text_len, dim]
  out.cross_kv.reserve(layers);
  for (size_t l = 0; l < layers; ++l) {
    keys.clear();
    values.clear();
    for (const WanTextState* p : parts) {
      keys.push_back(p->cross_kv[l].first);
      values.push_back(p->cross_kv[l].second);
    }
    out.cross_kv.emplace_back(at::cat(keys), at::cat(values));  // [sum B, text_len, heads, hd]
  }
  return out;
}

WanTextState WanModelImpl::PrepareText(const torch::Tensor& context) {
  TORCH_CHECK(context.dim() == 3 && context.size(2) == config_.text_dim,
              "DiT context must be [B, L, text_dim = ", config_.text_dim, "], got ",
              context.sizes());
  const int64_t len = context.size(1);
  TORCH_CHECK(len <= config_.text_len, "DiT context has ", len,
              " tokens; at most text_len = ", config_.text_len, " are allowed");
  // Zero-pad to text_len: the padded slots are embedded and attended like the official code.
  auto padded = at::constant_pad_nd(context.to(device()), {0, 0, 0, config_.text_len - len});
  auto hidden = Linear(padded, text_in_);  // [B, text_len, dim]
  hidden = dit::GeluTanh(std::move(hidden), fused_gelu_);
  WanTextState state;
  state.context = Linear(hidden, text_out_);  // [B, text_len, dim]
  state.cross_kv.reserve(block_list_.size());
  for (auto& block : block_list_)
    state.cross_kv.push_back(block->cross_attn->KeyValue(state.context));
  return state;
}

torch::Tensor WanModelImpl::Denoise(const torch::Tensor& x, const torch::Tensor& t,
                                    const WanTextState& text) {
  TORCH_CHECK(x.dim() == 5 && x.size(1) == config_.in_dim,
              "DiT input must be [B, in_dim = ", config_.in_dim, ", F, H, W], got ", x.sizes());
  const int64_t batch = x.size(0);
  TORCH_CHECK(text.batch() == batch && text.cross_kv.size() == block_list_.size(),
              "DiT text state has batch ", text.batch(), " but x has batch ", batch);
  TORCH_CHECK(t.dim() <= 1 && (t.numel() == batch || t.numel() == 1), "DiT timesteps must be [",
              batch, "] or [1], got ", t.sizes());
  const auto& p = config_.patch_size;
  const std::array<int64_t, 3> grid = {x.size(2) / p[0], x.size(3) / p[1], x.size(4) / p[2]};

  // Patch embedding: the strided Conv3d as one matmul over patch vectors.
  auto patches = Patchify(x.to(device(), compute_dtype()), p);    // [B, N, in·pt·ph·pw]
  auto weight = patch_embedding->weight.view({config_.dim, -1});  // [dim, in·pt·ph·pw]
  auto h = Float(at::addmm(patch_embedding->bias, patches.flatten(0, 1), weight.t())
                     .view({batch, -1, config_.dim}));  // [B, N, dim]

  // Timesteps may come from the host (the sampler's schedule): fp32 on the model's device.
  auto [e, e0] = TimeEmbedding(t.to(device(), at::kFloat).reshape({-1}).expand({batch}));
  const RopeTable rope = rope_cache_->Get(grid[0], grid[1], grid[2], device());
  for (size_t i = 0; i < block_list_.size(); ++i) {
    h = block_list_[i]->forward(h, e0, rope, text.cross_kv[i].first, text.cross_kv[i].second);
  }
  auto out = head->forward(h, e);                    // [B, N, pt·ph·pw·out_dim]
  return Unpatchify(out, grid, p, config_.out_dim);  // [B, out_dim, F, H, W]
}

torch::Tensor WanModelImpl::forward(const torch::Tensor& x, const torch::Tensor& t,
                                    const torch::Tensor& context) {
  return Denoise(x, t, PrepareText(context));
}

absl::StatusOr<WanModel> CreateWanModel(const WanConfig& config) {
  LV_RETURN_IF_ERROR(config.Validate());
  std::vector<std::shared_ptr<attention::AttentionCoreImpl>> cores;
  for (int64_t i = 0; i < config.num_layers; ++i) {
    auto core = attention::MakeAttentionCore(
        {config.attention_kinds[i], config.num_heads, config.head_dim()});
    if (!core.ok()) return Annotate(core.status(), absl::StrCat("DiT layer ", i));
    cores.push_back(*std::move(core));
  }
  return TorchCall("CreateWanModel", [&] { return WanModel(config, std::move(cores)); });
}

}  // namespace linvideo::core::wan

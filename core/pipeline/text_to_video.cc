#include "core/pipeline/text_to_video.h"

#include <ATen/ATen.h>
#include <torch/types.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "core/common/status.h"
#include "core/io/json_file.h"
#include "core/pipeline/model_folder.h"
#include "core/pipeline/model_index.h"
#include "core/sampling/guidance.h"
#include "core/sampling/noise.h"

namespace linvideo::core::pipeline {
namespace {

class WanTextToVideoPipeline final : public TextToVideoPipeline {
 public:
  WanTextToVideoPipeline(wan::WanModel dit, wan::T5Encoder text_encoder,
                         std::unique_ptr<wan::T5Tokenizer> tokenizer, wan::WanVae vae,
                         ModelLimits limits)
      : dit_(std::move(dit)),
        text_encoder_(std::move(text_encoder)),
        tokenizer_(std::move(tokenizer)),
        vae_(std::move(vae)),
        limits_(limits) {}

  const ModelLimits& limits() const override { return limits_; }

  absl::StatusOr<GenerationParams> Resolve(const GenerationParams& in) const override {
    return core::params::Resolve(in, limits_);
  }

  absl::StatusOr<std::vector<torch::Tensor>> EncodeText(
      const std::vector<std::string>& prompts) override {
    if (prompts.empty()) return std::vector<torch::Tensor>{};
    const int64_t text_len = dit_->config().text_len;
    LV_ASSIGN_OR_RETURN(wan::TokenizedBatch tokens, tokenizer_->Encode(prompts, text_len));
    c10::InferenceMode guard;
    // Encode() zeroes the padded positions: the official pipeline trims the umT5 output to the
    // prompt length and the DiT zero-pads it back to text_len.
    LV_ASSIGN_OR_RETURN(torch::Tensor out, text_encoder_->Encode(tokens.ids, tokens.mask));
    return TorchCall("EncodeText", [&] {
      auto embeddings = out.to(torch::kFloat);  // [B, text_len, text_dim]
      std::vector<torch::Tensor> result;
      for (int64_t i = 0; i < embeddings.size(0); ++i) result.push_back(embeddings[i].clone());
      return result;
    });
  }

  absl::StatusOr<std::unique_ptr<RequestState>> InitRequest(const GenerationParams& params,
                                                            torch::Tensor cond,
                                                            torch::Tensor uncond) override {
    auto state = std::make_unique<RequestState>();
    state->params = params;
    LV_ASSIGN_OR_RETURN(state->schedule, sampling::MakeRequestSchedule(params, limits_));
    state->sampler = sampling::MakeSamplerState(params.sampler.value_or(limits_.default_sampler),
                                                {}, params.seed);
    const bool cfg = core::params::UsesCfg(params);
    if (!cond.defined()) return absl::InvalidArgumentError("InitRequest: missing prompt embedding");
    if (cfg && !uncond.defined()) {
      return absl::InvalidArgumentError("InitRequest: guidance > 1 needs a negative embedding");
    }
    c10::InferenceMode guard;
    // The text part of the DiT, once per request: prompt and negative prompt as one batch.
    LV_RETURN_IF_ERROR(TorchCall("PrepareText", [&] {
      auto text = cfg ? torch::stack({cond, uncond}) : cond.unsqueeze(0);  // [1|2, L, text_dim]
      wan::WanTextState prepared = dit_->PrepareText(text);
      state->cond = wan::SliceTextState(prepared, 0, 1);
      if (cfg) state->uncond = wan::SliceTextState(prepared, 1, 2);
    }));
    const core::params::LatentShape shape = core::params::LatentShapeOf(params, limits_.geometry);
    // Wan draws the initial noise in float32 on the CPU from the request's own generator (the
    // same video on every device); it moves to the DiT's device once, and the latents and the
    // sampler's state stay there until Decode hands back uint8 frames.
    LV_ASSIGN_OR_RETURN(state->latents, TorchCall("initial noise", [&] {
                          return sampling::SeededNoise(
                              {shape.channels, shape.frames, shape.height, shape.width},
                              params.seed, torch::kFloat, dit_->device());  // [16, F', H/8, W/8]
                        }));
    return state;
  }

  absl::Status Step(const std::vector<RequestState*>& batch) override {
    if (batch.empty()) return absl::OkStatus();
    std::vector<torch::Tensor> xs, conds, unconds;
    std::vector<const wan::WanTextState*> text_rows;  // cond rows, then uncond rows of guided
    std::vector<double> scales;
    std::vector<int64_t> timesteps;
    for (RequestState* r : batch) {
      if (r->done()) {
        return absl::FailedPreconditionError("Step: a request in the batch is already finished");
      }
      if (!r->latents.sizes().equals(batch[0]->latents.sizes())) {
        return absl::InvalidArgumentError("Step: requests in one batch must share a latent shape");
      }
      xs.push_back(r->latents);
      // The prepared contexts stand for the text rows, so the guidance batch's row order is the
      // text state's.
      conds.push_back(r->cond.context[0]);
      unconds.push_back(r->uncond.batch() > 0 ? r->uncond.context[0] : torch::Tensor());
      text_rows.push_back(&r->cond);
      scales.push_back(r->params.guidance);
      timesteps.push_back(r->schedule.timesteps[r->step]);
    }
    LV_ASSIGN_OR_RETURN(sampling::GuidanceBatch gb,
                        sampling::MakeGuidanceBatch(xs, conds, unconds, scales));
    for (int64_t g : gb.guided) {
      timesteps.push_back(timesteps[g]);
      text_rows.push_back(&batch[g]->uncond);
    }
    c10::InferenceMode guard;
    LV_ASSIGN_OR_RETURN(
        torch::Tensor out, TorchCall("DiT forward", [&] {
          auto t = torch::tensor(timesteps, torch::kLong).to(dit_->device(), torch::kFloat);
          const wan::WanTextState text = wan::ConcatTextStates(text_rows);
          return dit_->Denoise(gb.x, t, text).to(torch::kFloat);
        }));
    LV_ASSIGN_OR_RETURN(std::vector<torch::Tensor> velocities, sampling::CombineGuidance(gb, out));
    // Every request's update is computed before any is committed: on an error no state has
    // changed, so the server can step the requests again one at a time (and only the one that
    // fails alone fails). The solver states are copied (tensor handles, not data) for this.
    std::vector<sampling::SamplerState> solvers;
    std::vector<torch::Tensor> next;
    for (size_t i = 0; i < batch.size(); ++i) {
      RequestState* r = batch[i];
      solvers.push_back(r->sampler);
      LV_ASSIGN_OR_RETURN(
          torch::Tensor x,
          sampling::SamplerStep(r->schedule, solvers.back(), r->step, velocities[i], r->latents));
      next.push_back(std::move(x));
    }
    std::vector<torch::Tensor> cond_v(batch.size()), uncond_v(batch.size());
    LV_RETURN_IF_ERROR(TorchCall("branch velocities", [&] {
      for (size_t k = 0; k < gb.guided.size(); ++k) {
        if (batch[gb.guided[k]]->keep_branch_velocities)
          uncond_v[gb.guided[k]] = out[gb.requests + k].clone();
      }
      for (size_t i = 0; i < batch.size(); ++i)
        if (batch[i]->keep_branch_velocities) cond_v[i] = out[i].clone();
    }));
    for (size_t i = 0; i < batch.size(); ++i) {
      RequestState* r = batch[i];
      if (r->keep_branch_velocities) {
        r->cond_velocity = std::move(cond_v[i]);
        if (uncond_v[i].defined()) r->uncond_velocity = std::move(uncond_v[i]);
      }
      r->latents = std::move(next[i]);
      r->sampler = std::move(solvers[i]);
      ++r->step;
      if (r->done()) {
        // Decode needs only the latents: free the text state (every layer's K/V) now, not when
        // a decode worker gets to the request.
        r->cond = {};
        r->uncond = {};
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<torch::Tensor> Decode(const RequestState& state) override {
    c10::InferenceMode guard;
    // The VAE denormalises the latents in fp32 and casts to its own precision after (vae_dtype
    // may differ from the DiT's).
    const torch::Tensor z = state.latents.unsqueeze(0);
    LV_ASSIGN_OR_RETURN(torch::Tensor video, wan::DecodeLatents(vae_, z));
    return TorchCall("frames to uint8", [&] {
      // [1, 3, F, H, W] in [-1, 1] -> [F, H, W, 3] uint8, scaled in fp32 (bf16 cannot hold
      // 127.5·(x + 1) to the nearest level)
      return video[0]
          .to(torch::kFloat)
          .permute({1, 2, 3, 0})
          .add(1.0)
          .mul(127.5)
          .round()
          .clamp(0, 255)
          .to(torch::kUInt8)
          .contiguous()
          .cpu();
    });
  }

  absl::StatusOr<std::vector<torch::Tensor>> Generate(
      const std::vector<GenerationParams>& params) override {
    std::vector<GenerationParams> resolved;
    for (const auto& p : params) {
      LV_ASSIGN_OR_RETURN(GenerationParams r, Resolve(p));
      if (!resolved.empty() && (r.width != resolved[0].width || r.height != resolved[0].height ||
                                r.frames != resolved[0].frames)) {
        return absl::InvalidArgumentError(
            "Generate: all requests of one call must share width, height and frames");
      }
      resolved.push_back(std::move(r));
    }
    // Encode every distinct prompt once, in one batch.
    std::map<std::string, size_t> slot;
    std::vector<std::string> texts;
    for (const auto& p : resolved) {
      for (const std::string* t : {&p.prompt, &p.negative_prompt}) {
        if (t == &p.negative_prompt && !core::params::UsesCfg(p))
          continue;  // unguided: no negative
        if (slot.emplace(*t, texts.size()).second) texts.push_back(*t);
      }
    }
    LV_ASSIGN_OR_RETURN(std::vector<torch::Tensor> embeddings, EncodeText(texts));
    std::vector<std::unique_ptr<RequestState>> states;
    std::vector<RequestState*> batch;
    for (const auto& p : resolved) {
      LV_ASSIGN_OR_RETURN(auto s,
                          InitRequest(p, embeddings[slot[p.prompt]],
                                      core::params::UsesCfg(p) ? embeddings[slot[p.negative_prompt]]
                                                               : torch::Tensor()));
      batch.push_back(s.get());
      states.push_back(std::move(s));
    }
    // Requests may differ in step counts: run until all are done, dropping finished ones.
    while (!batch.empty()) {
      LV_RETURN_IF_ERROR(Step(batch));
      batch.erase(
          std::remove_if(batch.begin(), batch.end(), [](RequestState* r) { return r->done(); }),
          batch.end());
    }
    std::vector<torch::Tensor> videos;
    for (const auto& s : states) {
      LV_ASSIGN_OR_RETURN(torch::Tensor frames, Decode(*s));
      videos.push_back(std::move(frames));
    }
    return videos;
  }

 private:
  wan::WanModel dit_;
  wan::T5Encoder text_encoder_;
  std::unique_ptr<wan::T5Tokenizer> tokenizer_;
  wan::WanVae vae_;
  ModelLimits limits_;
};

// Checks that the components agree and sets what `limits` takes from them: text_len and the
// latent geometry (hence the allowed sizes and every token count), which are the model's own.
absl::Status ComponentLimits(const wan::WanModel& dit, const wan::T5Encoder& t5,
                             const wan::WanVae& vae, ModelLimits& limits) {
  if (t5->config().dim != dit->config().text_dim) {
    return absl::InvalidArgumentError(absl::StrCat("text encoder width ", t5->config().dim,
                                                   " does not match the transformer's ",
                                                   "text_dim ", dit->config().text_dim));
  }
  limits.text_len = dit->config().text_len;
  core::params::LatentGeometry& g = limits.geometry;
  g.channels = dit->config().in_dim;
  g.time_stride = vae->config().temporal_stride();
  g.space_stride = vae->config().spatial_stride();
  g.patch_t = dit->config().patch_size[0];
  g.patch_h = dit->config().patch_size[1];
  g.patch_w = dit->config().patch_size[2];
  if (vae->config().z_dim != g.channels) {
    return absl::InvalidArgumentError(absl::StrCat("VAE z_dim ", vae->config().z_dim,
                                                   " does not match the transformer's in_dim ",
                                                   g.channels));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyModelIndexLimits(const std::string& root, ModelLimits& limits) {
  const std::string path = (std::filesystem::path(root) / "model_index.json").string();
  auto index = io::ReadJsonFile(path);
  if (absl::IsNotFound(index.status())) return absl::OkStatus();  // the Wan layout has none
  if (!index.ok()) return index.status();
  return ApplyServingSection(*index, path, limits);
}

absl::StatusOr<std::unique_ptr<TextToVideoPipeline>> TextToVideoPipeline::Create(
    const PipelineOptions& options) {
  // fp16 is not offered (issue 19: "fp16 works or is not offered"): nothing here was made or
  // measured for it, umT5's feed-forward activations exceed fp16's range (the official Wan code
  // keeps the text encoder in bf16 / fp32) and the fused linear-attention kernels take fp32 or
  // bf16.
  if (options.device.dtype == c10::kHalf ||
      (options.vae_dtype.has_value() && *options.vae_dtype == c10::kHalf)) {
    return absl::InvalidArgumentError(
        "dtype fp16 is not offered for generation: umT5's activations overflow fp16 and the "
        "linear-attention kernels take fp32 or bf16; allowed: bf16 (GPUs) or fp32, for the model "
        "and for the VAE");
  }
  InitRuntime(options.threads);
  LV_ASSIGN_OR_RETURN(ModelFolder folder, ResolveModelFolder(options.model_dir));
  auto require = [&](const std::optional<ComponentPath>& c, const char* name) -> absl::Status {
    if (c) return absl::OkStatus();
    return absl::NotFoundError(absl::StrCat("model folder ", options.model_dir, " has no ", name,
                                            " component; a text-to-video model needs "
                                            "transformer, text_encoder, tokenizer and vae"));
  };
  LV_RETURN_IF_ERROR(require(folder.transformer, "transformer"));
  LV_RETURN_IF_ERROR(require(folder.text_encoder, "text_encoder"));
  LV_RETURN_IF_ERROR(require(folder.tokenizer, "tokenizer"));
  LV_RETURN_IF_ERROR(require(folder.vae, "vae"));
  LV_ASSIGN_OR_RETURN(wan::WanModel dit, LoadDit(*folder.transformer, options.device));
  LV_ASSIGN_OR_RETURN(wan::T5Encoder t5, LoadTextEncoder(*folder.text_encoder, options.device));
  LV_ASSIGN_OR_RETURN(auto tokenizer, LoadTokenizer(*folder.tokenizer));
  LV_ASSIGN_OR_RETURN(wan::WanVae vae, LoadVae(*folder.vae, options.device));
  if (options.vae_dtype.has_value() && *options.vae_dtype != vae->dtype()) {
    LV_RETURN_IF_ERROR(TorchCall("VAE to its dtype", [&] { vae->to(*options.vae_dtype); }));
  }
  ModelLimits limits;
  LV_RETURN_IF_ERROR(ComponentLimits(dit, t5, vae, limits));
  LV_RETURN_IF_ERROR(ApplyModelIndexLimits(folder.root, limits));
  return FromComponents(std::move(dit), std::move(t5), std::move(tokenizer), std::move(vae),
                        limits);
}

absl::StatusOr<std::unique_ptr<TextToVideoPipeline>> TextToVideoPipeline::FromComponents(
    wan::WanModel dit, wan::T5Encoder text_encoder, std::unique_ptr<wan::T5Tokenizer> tokenizer,
    wan::WanVae vae, ModelLimits limits) {
  if (!tokenizer) return absl::InvalidArgumentError("FromComponents: no tokenizer");
  LV_RETURN_IF_ERROR(ComponentLimits(dit, text_encoder, vae, limits));
  return std::unique_ptr<TextToVideoPipeline>(std::make_unique<WanTextToVideoPipeline>(
      std::move(dit), std::move(text_encoder), std::move(tokenizer), std::move(vae), limits));
}

}  // namespace linvideo::core::pipeline

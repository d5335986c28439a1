// `linvideo-model forward`: runs one component on tensors from a safetensors file, so results can
// be compared with other implementations of Wan 2.1.
//
//   dit:           x [B,16,F,H,W] f32, t [B] f32 (0..1000), context [B,L,text_dim] f32 -> out
//   text-encoder:  ids [B,L] i64, mask [B,L] i64 -> out [B,L,d_model]
//   vae-decode:    z [B,16,F,H,W] (normalised latents) -> out [B,3,1+4(F-1),8H,8W] in [-1,1]
//   vae-encode:    x [B,3,T,H,W] in [-1,1] -> out [B,16,(T-1)/4+1,H/8,W/8] (normalised mean)

#include <torch/types.h>

#include <iostream>

#include "absl/strings/str_cat.h"
#include "core/common/runtime.h"
#include "core/common/status.h"
#include "core/pipeline/model_folder.h"
#include "tools/flags.h"
#include "tools/model_commands.h"

namespace linvideo::tools {
namespace {

using core::io::TensorMap;

absl::StatusOr<torch::Tensor> Input(const TensorMap& inputs, const std::string& name,
                                    int64_t dims) {
  auto it = inputs.find(name);
  if (it == inputs.end()) {
    return absl::InvalidArgumentError(absl::StrCat("inputs file has no tensor '", name, "'"));
  }
  if (it->second.dim() != dims) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", name, "' must have ", dims, " dimensions, got ", it->second.dim()));
  }
  return it->second;
}

absl::StatusOr<core::pipeline::ComponentPath> Pick(
    const std::optional<core::pipeline::ComponentPath>& c, const std::string& model,
    const char* what) {
  if (!c) {
    return absl::NotFoundError(absl::StrCat("'", model, "' has no ", what, " component"));
  }
  return *c;
}

}  // namespace

absl::Status RunForward(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(Flags flags, Flags::Parse(args, {"model", "component", "inputs", "output",
                                                       "device", "dtype", "threads"}));
  LV_ASSIGN_OR_RETURN(std::string model, flags.Required("model"));
  LV_ASSIGN_OR_RETURN(std::string component, flags.Required("component"));
  LV_ASSIGN_OR_RETURN(std::string inputs_path, flags.Required("inputs"));
  LV_ASSIGN_OR_RETURN(std::string output_path, flags.Required("output"));
  core::DeviceOptions device;
  LV_ASSIGN_OR_RETURN(device.device, core::ParseDevice(flags.Get("device", "cpu")));
  LV_ASSIGN_OR_RETURN(device.dtype, core::ParseDtype(flags.Get("dtype", "fp32")));
  LV_ASSIGN_OR_RETURN(int64_t threads, flags.GetInt("threads", 0));
  core::InitRuntime(static_cast<int>(threads));

  LV_ASSIGN_OR_RETURN(auto folder, core::pipeline::ResolveModelFolder(model));
  LV_ASSIGN_OR_RETURN(TensorMap inputs, core::io::ReadSafetensors(inputs_path));
  c10::InferenceMode guard;
  torch::Tensor out;
  if (component == "dit" || component == "transformer") {
    LV_ASSIGN_OR_RETURN(auto path, Pick(folder.transformer, model, "transformer"));
    LV_ASSIGN_OR_RETURN(auto dit, core::pipeline::LoadDit(path, device));
    LV_ASSIGN_OR_RETURN(auto x, Input(inputs, "x", 5));
    LV_ASSIGN_OR_RETURN(auto t, Input(inputs, "t", 1));
    LV_ASSIGN_OR_RETURN(auto context, Input(inputs, "context", 3));
    LV_ASSIGN_OR_RETURN(out, core::TorchCall("dit forward", [&] {
                          return dit->forward(x.to(device.device, torch::kFloat),
                                              t.to(device.device, torch::kFloat),
                                              context.to(device.device, torch::kFloat));
                        }));
  } else if (component == "text-encoder") {
    LV_ASSIGN_OR_RETURN(auto path, Pick(folder.text_encoder, model, "text_encoder"));
    LV_ASSIGN_OR_RETURN(auto t5, core::pipeline::LoadTextEncoder(path, device));
    LV_ASSIGN_OR_RETURN(auto ids, Input(inputs, "ids", 2));
    LV_ASSIGN_OR_RETURN(auto mask, Input(inputs, "mask", 2));
    LV_ASSIGN_OR_RETURN(out, core::TorchCall("text encoder forward", [&] {
                          return t5->forward(ids.to(device.device, torch::kLong),
                                             mask.to(device.device, torch::kLong));
                        }));
  } else if (component == "vae-decode" || component == "vae-encode") {
    LV_ASSIGN_OR_RETURN(auto path, Pick(folder.vae, model, "vae"));
    LV_ASSIGN_OR_RETURN(auto vae, core::pipeline::LoadVae(path, device));
    if (component == "vae-decode") {
      LV_ASSIGN_OR_RETURN(auto z, Input(inputs, "z", 5));
      LV_ASSIGN_OR_RETURN(out, core::wan::DecodeLatents(vae, z.to(device.device, torch::kFloat)));
    } else {
      LV_ASSIGN_OR_RETURN(auto x, Input(inputs, "x", 5));
      LV_ASSIGN_OR_RETURN(out, core::wan::EncodeVideo(vae, x.to(device.device, torch::kFloat)));
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown --component '", component,
                     "'; allowed: dit, text-encoder, vae-decode, vae-encode"));
  }
  LV_RETURN_IF_ERROR(core::io::WriteSafetensors(
      output_path, {{"out", out.to(torch::kCPU, torch::kFloat).contiguous()}}));
  std::cout << component << ": wrote out " << out.sizes() << " to " << output_path << "\n";
  return absl::OkStatus();
}

}  // namespace linvideo::tools

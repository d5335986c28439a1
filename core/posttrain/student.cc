#include "core/posttrain/student.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/attention/hybrid_attention.h"
#include "core/common/status.h"
#include "core/io/state_dict.h"
#include "kernels/torch_compat.h"

namespace linvideo::core::posttrain {
namespace {

attention::HybridAttentionCoreImpl* HybridCore(wan::WanModel& model, int64_t layer) {
  auto* block = model->blocks[layer]->as<wan::WanAttentionBlockImpl>();
  if (block == nullptr) return nullptr;
  return dynamic_cast<attention::HybridAttentionCoreImpl*>(block->self_attn->attn_core.get());
}

// The teacher's config with `kind` at `layers`, every teacher tensor copied (the attention cores'
// own tensors — gates, and feature maps of layers that were softmax — keep their initialisation).
absl::StatusOr<wan::WanModel> StudentWithKinds(wan::WanModel& teacher,
                                               const std::vector<int64_t>& layers,
                                               attention::AttentionKind kind) {
  wan::WanConfig config = teacher->config();
  for (int64_t l : layers) config.attention_kinds[l] = kind;
  LV_ASSIGN_OR_RETURN(wan::WanModel student, wan::CreateWanModel(config));
  io::LoadOptions load;
  load.ignore_missing = [](const std::string& name) {
    return name.find(".self_attn.attn_core.") != std::string::npos;
  };
  LV_RETURN_IF_ERROR(TorchCall("make the student", [&] {
    student->to(teacher->device(), at::kFloat);
    student->SetFusedGelu(teacher->fused_gelu());
  }));
  LV_RETURN_IF_ERROR(io::LoadStateDict(*student, io::StateDict(*teacher), load));
  return student;
}

}  // namespace

absl::StatusOr<wan::WanModel> MakeHybridStudent(wan::WanModel& teacher,
                                                const SelectionOptions& options, double r_init) {
  LV_RETURN_IF_ERROR(ValidateSelection(options));
  if (options.num_layers != teacher->config().num_layers) {
    return absl::InvalidArgumentError(absl::StrCat("the selection is for ", options.num_layers,
                                                   " layers; the teacher has ",
                                                   teacher->config().num_layers));
  }
  if (!(r_init >= 0.0 && r_init <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("r_init ", r_init, " is not in [0, 1]"));
  }
  LV_ASSIGN_OR_RETURN(wan::WanModel student, StudentWithKinds(teacher, HybridLayers(options),
                                                              attention::AttentionKind::kHybrid));
  // CreateWanModel made these layers hybrid, so each has a gate.
  for (int64_t l : HybridLayers(options)) HybridCore(student, l)->set_r(r_init);
  return student;
}

absl::StatusOr<wan::WanModel> MakeLinearStudent(wan::WanModel& teacher,
                                                const std::vector<int64_t>& linear) {
  const int64_t layers = teacher->config().num_layers;
  std::vector<bool> seen(layers, false);
  for (int64_t l : linear) {
    if (l < 0 || l >= layers) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer ", l, " is not a layer index in [0, ", layers, ")"));
    }
    if (seen[l]) return absl::InvalidArgumentError(absl::StrCat("layer ", l, " is listed twice"));
    seen[l] = true;
  }
  return StudentWithKinds(teacher, linear, attention::AttentionKind::kLinear);
}

absl::StatusOr<std::vector<torch::Tensor>> HybridGates(wan::WanModel& student,
                                                       const SelectionOptions& options) {
  std::vector<torch::Tensor> gates;
  for (int64_t l : HybridLayers(options)) {
    if (l >= static_cast<int64_t>(student->blocks->size())) {
      return absl::FailedPreconditionError(
          absl::StrCat("layer ", l, " is beyond the model's ", student->blocks->size()));
    }
    attention::HybridAttentionCoreImpl* core = HybridCore(student, l);
    if (core == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("layer ", l, " of the student is not hybrid"));
    }
    gates.push_back(core->r());
  }
  return gates;
}

torch::Tensor Velocity(wan::WanModel& model, const torch::Tensor& x, const torch::Tensor& t,
                       const torch::Tensor& context, bool bf16) {
  kernels::ScopedBf16Autocast autocast(bf16, x.device().type());
  return model->forward(x, t, context).to(torch::kFloat);
}

}  // namespace linvideo::core::posttrain

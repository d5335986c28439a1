#include "core/attention/attention.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/attention/hybrid_attention.h"
#include "core/attention/linear_attention.h"
#include "core/attention/softmax_attention.h"

namespace linvideo::core::attention {

absl::StatusOr<AttentionKind> ParseAttentionKind(const std::string& name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "softmax") return AttentionKind::kSoftmax;
  if (n == "linear") return AttentionKind::kLinear;
  if (n == "hybrid") return AttentionKind::kHybrid;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown attention kind '", name, "'; allowed: softmax, linear, hybrid"));
}

std::string AttentionKindName(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::kSoftmax:
      return "softmax";
    case AttentionKind::kLinear:
      return "linear";
    case AttentionKind::kHybrid:
      return "hybrid";
  }
  return "unknown";
}

absl::StatusOr<std::shared_ptr<AttentionCoreImpl>> MakeAttentionCore(
    const AttentionCoreOptions& options) {
  switch (options.kind) {
    case AttentionKind::kSoftmax:
      return std::shared_ptr<AttentionCoreImpl>(std::make_shared<SoftmaxAttentionCoreImpl>());
    case AttentionKind::kLinear: {
      auto core = LinearAttentionCoreImpl::Create(options);
      if (!core.ok()) return core.status();
      return std::shared_ptr<AttentionCoreImpl>(*std::move(core));
    }
    case AttentionKind::kHybrid: {
      auto core = HybridAttentionCoreImpl::Create(options);
      if (!core.ok()) return core.status();
      return std::shared_ptr<AttentionCoreImpl>(*std::move(core));
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown attention kind ",
                                                 static_cast<int>(options.kind),
                                                 "; allowed: softmax, linear, hybrid"));
}

}  // namespace linvideo::core::attention

#include "core/attention/attention.h"

#include "absl/strings/str_cat.h"
#include "core/attention/hybrid_attention.h"
#include "core/attention/linear_attention.h"
#include "core/attention/softmax_attention.h"

namespace linvideo::core::attention {

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

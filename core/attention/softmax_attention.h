#pragma once
// The softmax attention core (kind kSoftmax): the layer's attention as Wan trained it, through
// kernels::SoftmaxAttention (memory-bounded on CPU, SDPA on CUDA).

#include <torch/types.h>

#include "core/attention/attention.h"
#include "kernels/softmax_attention.h"

namespace linvideo::core::attention {

class SoftmaxAttentionCoreImpl : public AttentionCoreImpl {
 public:
  AttentionKind kind() const override { return AttentionKind::kSoftmax; }
  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k,
                        const torch::Tensor& v) override {
    return kernels::SoftmaxAttention(q, k, v);
  }
};

}  // namespace linvideo::core::attention

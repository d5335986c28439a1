#include "core/sampling/guidance.h"

#include "absl/strings/str_format.h"
#include "core/common/status.h"

namespace linvideo::core::sampling {

torch::Tensor ApplyGuidance(const torch::Tensor& cond_out, const torch::Tensor& uncond_out,
                            double scale) {
  return uncond_out + (cond_out - uncond_out).mul(scale);
}

absl::StatusOr<std::pair<torch::Tensor, torch::Tensor>> SplitCondUncond(const torch::Tensor& out) {
  if (!out.defined() || out.dim() < 1 || out.size(0) == 0 || out.size(0) % 2 != 0) {
    return absl::InvalidArgumentError(
        "a cond/uncond output must have an even, non-zero leading (batch) dimension");
  }
  const int64_t b = out.size(0) / 2;
  return std::make_pair(out.narrow(0, 0, b), out.narrow(0, b, b));  // [B, ...] each
}

absl::StatusOr<GuidanceBatch> MakeGuidanceBatch(const std::vector<torch::Tensor>& x,
                                                const std::vector<torch::Tensor>& cond,
                                                const std::vector<torch::Tensor>& uncond,
                                                const std::vector<double>& scales) {
  const size_t n = x.size();
  if (n == 0 || cond.size() != n || uncond.size() != n || scales.size() != n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "guidance batch needs one x, cond, uncond (may be undefined) and scale per request, and at "
        "least one request; got %d, %d, %d, %d",
        n, cond.size(), uncond.size(), scales.size()));
  }
  GuidanceBatch batch;
  batch.requests = static_cast<int64_t>(n);
  batch.scales = scales;
  std::vector<torch::Tensor> xs = x;
  std::vector<torch::Tensor> contexts = cond;
  for (size_t i = 0; i < n; ++i) {
    if (!x[i].defined() || !cond[i].defined()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("request %d of a guidance batch lacks its sample or context", i));
    }
    if (x[i].sizes() != x[0].sizes() || cond[i].sizes() != cond[0].sizes()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "request %d of a guidance batch has a different sample or context shape than request 0; "
          "one batch must share shapes",
          i));
    }
    if (uncond[i].defined()) {
      if (uncond[i].sizes() != cond[0].sizes()) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "request %d: the unconditional context must have the conditional context's shape", i));
      }
      xs.push_back(x[i]);
      contexts.push_back(uncond[i]);
      batch.guided.push_back(static_cast<int64_t>(i));
    }
  }
  LV_ASSIGN_OR_RETURN(batch.x, TorchCall("MakeGuidanceBatch", [&] {
                        return torch::stack(xs);  // [B + U, ...]
                      }));
  LV_ASSIGN_OR_RETURN(batch.context, TorchCall("MakeGuidanceBatch", [&] {
                        return torch::stack(contexts);  // [B + U, L, D]
                      }));
  return batch;
}

absl::StatusOr<std::vector<torch::Tensor>> CombineGuidance(const GuidanceBatch& batch,
                                                           const torch::Tensor& model_out) {
  const int64_t rows = batch.requests + static_cast<int64_t>(batch.guided.size());
  if (!model_out.defined() || model_out.dim() < 1 || model_out.size(0) != rows) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "model output for this guidance batch must have %d rows (%d requests + %d unconditional)",
        rows, batch.requests, batch.guided.size()));
  }
  return TorchCall("CombineGuidance", [&] {
    std::vector<torch::Tensor> out;
    out.reserve(batch.requests);
    for (int64_t i = 0; i < batch.requests; ++i) out.push_back(model_out[i]);
    for (size_t k = 0; k < batch.guided.size(); ++k) {
      const int64_t i = batch.guided[k];
      out[i] = ApplyGuidance(out[i], model_out[batch.requests + static_cast<int64_t>(k)],
                             batch.scales[i]);
    }
    return out;
  });
}

}  // namespace linvideo::core::sampling

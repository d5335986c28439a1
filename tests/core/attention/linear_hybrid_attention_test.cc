// Linear and hybrid attention cores: creation, parameter names, identity init, equivalences with
// the softmax core and the kernels, branch skipping at r ∈ {0, 1}, and gradients to W̃ and r.

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>
#include <limits>
#include <memory>

#include "core/attention/attention.h"
#include "core/attention/hybrid_attention.h"
#include "core/attention/linear_attention.h"
#include "core/attention/softmax_attention.h"
#include "kernels/linear_attention.h"

namespace linvideo::core::attention {
namespace {

AttentionCoreOptions Options(AttentionKind kind, int64_t heads = 2, int64_t head_dim = 8) {
  AttentionCoreOptions o;
  o.kind = kind;
  o.num_heads = heads;
  o.head_dim = head_dim;
  return o;
}

std::shared_ptr<HybridAttentionCoreImpl> MakeHybrid(double r, int64_t heads = 2, int64_t d = 8) {
  auto o = Options(AttentionKind::kHybrid, heads, d);
  o.hybrid_r_init = r;
  auto core = HybridAttentionCoreImpl::Create(o);
  EXPECT_TRUE(core.ok()) << core.status();
  return *core;
}

// Random, non-identity feature maps so that the tests see them.
void Perturb(LinearAttentionCoreImpl& core) {
  at::NoGradGuard no_grad;
  for (auto& p : core.named_parameters()) {
    if (p.key() != "r") p.value().add_(0.3 * at::randn_like(p.value()));
  }
}

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(LinearHybridAttentionTest, FactoryCreatesKindsWithDocumentedParameters) {
  auto lin = MakeAttentionCore(Options(AttentionKind::kLinear, 3, 16));
  ASSERT_TRUE(lin.ok()) << lin.status();
  EXPECT_EQ((*lin)->kind(), AttentionKind::kLinear);
  auto params = (*lin)->named_parameters();
  ASSERT_EQ(params.size(), 2u);
  ASSERT_TRUE(params.contains("feature_map_q") && params.contains("feature_map_k"));
  EXPECT_EQ(params["feature_map_q"].sizes(), (std::vector<int64_t>{3, 16, 16}));
  EXPECT_TRUE(params["feature_map_k"].requires_grad());

  auto hyb = MakeAttentionCore(Options(AttentionKind::kHybrid, 3, 16));
  ASSERT_TRUE(hyb.ok()) << hyb.status();
  EXPECT_EQ((*hyb)->kind(), AttentionKind::kHybrid);
  auto hp = (*hyb)->named_parameters();
  ASSERT_EQ(hp.size(), 3u);
  ASSERT_TRUE(hp.contains("r"));
  EXPECT_EQ(hp["r"].dim(), 0);
  EXPECT_FLOAT_EQ(hp["r"].item<float>(), 0.5f);
}

TEST(LinearHybridAttentionTest, FeatureMapsStartAsIdentityAndReset) {
  auto lin = *LinearAttentionCoreImpl::Create(Options(AttentionKind::kLinear, 2, 8));
  auto eye = at::eye(8).expand({2, 8, 8});
  EXPECT_TRUE(lin->feature_map_q().equal(eye));
  EXPECT_TRUE(lin->feature_map_k().equal(eye));
  Perturb(*lin);
  EXPECT_FALSE(lin->feature_map_q().equal(eye));
  lin->ResetToIdentity();
  EXPECT_TRUE(lin->feature_map_q().equal(eye));
  EXPECT_TRUE(lin->feature_map_k().equal(eye));
}

TEST(LinearHybridAttentionTest, RejectsInvalidOptions) {
  EXPECT_EQ(MakeAttentionCore(Options(AttentionKind::kLinear, 0, 8)).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto o = Options(AttentionKind::kHybrid);
  o.hybrid_r_init = 1.5;
  auto st = MakeAttentionCore(o).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("[0, 1]"), std::string::npos) << st;
  o = Options(AttentionKind::kLinear);
  o.linear_eps = 0;
  EXPECT_EQ(MakeAttentionCore(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LinearHybridAttentionTest, LinearCoreMatchesReferenceKernel) {
  at::manual_seed(0);
  auto lin = *LinearAttentionCoreImpl::Create(Options(AttentionKind::kLinear, 2, 8));
  Perturb(*lin);
  auto q = at::randn({2, 30, 2, 8}), k = at::randn({2, 30, 2, 8}), v = at::randn({2, 30, 2, 8});
  at::NoGradGuard no_grad;
  auto ref = kernels::LinearAttentionReference(q, k, v, lin->feature_map_q(), lin->feature_map_k());
  EXPECT_LT(MaxAbsDiff(lin->forward(q, k, v), ref), 1e-5);
}

TEST(LinearHybridAttentionTest, GateOneIsSoftmaxAndSkipsLinearBranch) {
  at::manual_seed(1);
  auto hyb = MakeHybrid(1.0);
  {
    // NaN feature maps: if the linear branch ran at all, the output would be NaN.
    at::NoGradGuard no_grad;
    hyb->feature_map_q().fill_(std::numeric_limits<float>::quiet_NaN());
  }
  auto q = at::randn({1, 20, 2, 8}), k = at::randn({1, 20, 2, 8}), v = at::randn({1, 20, 2, 8});
  at::NoGradGuard no_grad;
  auto out = hyb->forward(q, k, v);
  EXPECT_TRUE(out.equal(kernels::SoftmaxAttention(q, k, v)));
  EXPECT_EQ(hyb->linear_calls(), 0);
  EXPECT_EQ(hyb->softmax_calls(), 1);
  // Stored values above 1 clamp to 1.
  hyb->set_r(1.7);
  EXPECT_TRUE(hyb->forward(q, k, v).equal(out));
  EXPECT_EQ(hyb->linear_calls(), 0);
}

TEST(LinearHybridAttentionTest, GateZeroIsLinearAndSkipsSoftmaxBranch) {
  at::manual_seed(2);
  auto hyb = MakeHybrid(0.0);
  Perturb(*hyb);
  auto lin = *LinearAttentionCoreImpl::Create(Options(AttentionKind::kLinear));
  {
    at::NoGradGuard no_grad;
    lin->feature_map_q().copy_(hyb->feature_map_q());
    lin->feature_map_k().copy_(hyb->feature_map_k());
  }
  auto q = at::randn({1, 20, 2, 8}), k = at::randn({1, 20, 2, 8}), v = at::randn({1, 20, 2, 8});
  at::NoGradGuard no_grad;
  EXPECT_TRUE(hyb->forward(q, k, v).equal(lin->forward(q, k, v)));
  EXPECT_EQ(hyb->softmax_calls(), 0);
  EXPECT_EQ(hyb->linear_calls(), 1);
  hyb->set_r(-0.25);  // clamps to 0
  EXPECT_TRUE(hyb->forward(q, k, v).equal(lin->forward(q, k, v)));
  EXPECT_EQ(hyb->softmax_calls(), 0);
}

TEST(LinearHybridAttentionTest, InteriorGateBlendsBothBranches) {
  at::manual_seed(3);
  auto hyb = MakeHybrid(0.3);
  Perturb(*hyb);
  auto q = at::randn({1, 25, 2, 8}), k = at::randn({1, 25, 2, 8}), v = at::randn({1, 25, 2, 8});
  at::NoGradGuard no_grad;
  auto soft = kernels::SoftmaxAttention(q, k, v);
  auto lin = kernels::LinearAttentionReference(q, k, v, hyb->feature_map_q(), hyb->feature_map_k());
  EXPECT_LT(MaxAbsDiff(hyb->forward(q, k, v), 0.3 * soft + 0.7 * lin), 1e-5);
  EXPECT_EQ(hyb->softmax_calls(), 1);
  EXPECT_EQ(hyb->linear_calls(), 1);
}

TEST(LinearHybridAttentionTest, TrainingAtGateOneStillGivesGradientToR) {
  at::manual_seed(4);
  auto hyb = MakeHybrid(1.0);
  Perturb(*hyb);
  auto q = at::randn({1, 10, 2, 8}), k = at::randn({1, 10, 2, 8}), v = at::randn({1, 10, 2, 8});
  auto out = hyb->forward(q, k, v);
  EXPECT_EQ(hyb->linear_calls(), 1);  // both branches: dL/dr = <dL/do, softmax − linear>
  out.sum().backward();
  ASSERT_TRUE(hyb->r().grad().defined());
  EXPECT_NE(hyb->r().grad().item<float>(), 0.0f);
}

TEST(LinearHybridAttentionTest, GradientsToRAndFeatureMapsMatchFiniteDifferences) {
  at::manual_seed(5);
  auto hyb = MakeHybrid(0.4, /*heads=*/2, /*d=*/4);
  Perturb(*hyb);
  hyb->to(at::kDouble);
  auto q = at::randn({1, 5, 2, 4}, at::kDouble), k = at::randn({1, 5, 2, 4}, at::kDouble),
       v = at::randn({1, 5, 2, 4}, at::kDouble), probe = at::randn({1, 5, 2, 4}, at::kDouble);
  auto loss = [&] { return (hyb->forward(q, k, v) * probe).sum(); };
  auto params = hyb->named_parameters();
  std::vector<at::Tensor> inputs = {params["r"], params["feature_map_q"], params["feature_map_k"]};
  auto grads = torch::autograd::grad({loss()}, inputs);
  at::NoGradGuard no_grad;
  const double h = 1e-6;
  for (size_t p = 0; p < inputs.size(); ++p) {
    auto flat = inputs[p].view(-1);
    for (int64_t i = 0; i < flat.numel(); ++i) {
      const double x0 = flat[i].item<double>();
      flat[i] = x0 + h;
      const double up = loss().item<double>();
      flat[i] = x0 - h;
      const double dn = loss().item<double>();
      flat[i] = x0;
      const double fd = (up - dn) / (2 * h);
      EXPECT_NEAR(grads[p].reshape(-1)[i].item<double>(), fd, 1e-6 + 1e-5 * std::abs(fd))
          << "parameter " << p << " entry " << i;
    }
  }
  EXPECT_NE(grads[0].item<double>(), 0.0);
}

}  // namespace
}  // namespace linvideo::core::attention

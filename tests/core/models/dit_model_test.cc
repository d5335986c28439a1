#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/models/wan/dit.h"

namespace linvideo::core::wan {
namespace {

WanConfig Tiny() { return *NamedDitConfig("tiny"); }

WanModel MakeModel(const WanConfig& config, uint64_t seed = 0) {
  torch::manual_seed(seed);
  auto model = CreateWanModel(config);
  EXPECT_TRUE(model.ok()) << model.status();
  return *model;
}

std::set<std::string> Names(const torch::nn::Module& module) {
  std::set<std::string> names;
  for (const auto& item : module.named_parameters()) names.insert(item.key());
  for (const auto& item : module.named_buffers()) names.insert(item.key());
  return names;
}

float RelError(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).norm() / b.norm()).item<float>();
}

TEST(DitModelTest, HasTheOfficialParameterNamesAndShapes) {
  WanModel model = MakeModel(Tiny());
  std::set<std::string> expected;
  for (const char* top :
       {"patch_embedding", "text_embedding.0", "text_embedding.2", "time_embedding.0",
        "time_embedding.2", "time_projection.1", "head.head"}) {
    expected.insert(absl::StrCat(top, ".weight"));
    expected.insert(absl::StrCat(top, ".bias"));
  }
  expected.insert("head.modulation");
  for (int i = 0; i < 2; ++i) {
    const std::string b = absl::StrCat("blocks.", i, ".");
    expected.insert(b + "modulation");
    for (const char* part :
         {"self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o", "cross_attn.q",
          "cross_attn.k", "cross_attn.v", "cross_attn.o", "norm3", "ffn.0", "ffn.2"}) {
      expected.insert(b + part + ".weight");
      expected.insert(b + part + ".bias");
    }
    for (const char* norm :
         {"self_attn.norm_q", "self_attn.norm_k", "cross_attn.norm_q", "cross_attn.norm_k"}) {
      expected.insert(b + norm + ".weight");
    }
  }
  EXPECT_EQ(Names(*model), expected);

  auto params = model->named_parameters();
  EXPECT_EQ(params["patch_embedding.weight"].sizes(), (std::vector<int64_t>{128, 16, 1, 2, 2}));
  EXPECT_EQ(params["text_embedding.0.weight"].sizes(), (std::vector<int64_t>{128, 64}));
  EXPECT_EQ(params["time_embedding.0.weight"].sizes(), (std::vector<int64_t>{128, 32}));
  EXPECT_EQ(params["time_projection.1.weight"].sizes(), (std::vector<int64_t>{768, 128}));
  EXPECT_EQ(params["blocks.1.modulation"].sizes(), (std::vector<int64_t>{1, 6, 128}));
  EXPECT_EQ(params["blocks.1.ffn.0.weight"].sizes(), (std::vector<int64_t>{256, 128}));
  EXPECT_EQ(params["blocks.0.self_attn.norm_q.weight"].sizes(), (std::vector<int64_t>{128}));
  EXPECT_EQ(params["head.head.weight"].sizes(), (std::vector<int64_t>{64, 128}));
  EXPECT_EQ(params["head.modulation"].sizes(), (std::vector<int64_t>{1, 2, 128}));
}

TEST(DitModelTest, OptionalNormsFollowTheConfig) {
  WanConfig config = Tiny();
  config.qk_norm = false;
  config.cross_attn_norm = false;
  WanModel model = MakeModel(config);
  for (const auto& name : Names(*model)) {
    EXPECT_EQ(name.find("norm"), std::string::npos) << name;
  }
  torch::NoGradGuard no_grad;
  auto out = model->forward(torch::randn({1, 16, 1, 4, 4}), torch::tensor({500.0f}),
                            torch::randn({1, 7, 64}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 16, 1, 4, 4}));
}

TEST(DitModelTest, ForwardShapesPaddingAndBatchIndependence) {
  WanModel model = MakeModel(Tiny());
  torch::NoGradGuard no_grad;
  torch::manual_seed(3);
  auto x = torch::randn({2, 16, 3, 8, 6});
  auto t = torch::tensor({999.0f, 250.5f});
  auto context = torch::randn({2, 5, 64});
  auto out = model->forward(x, t, context);
  EXPECT_EQ(out.sizes(), x.sizes());
  EXPECT_EQ(out.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());

  // Short context == context zero-padded to text_len (the model pads the same way).
  auto padded = torch::cat({context, torch::zeros({2, 27, 64})}, 1);
  EXPECT_TRUE(torch::allclose(model->forward(x, t, padded), out, 1e-5, 1e-6));
  // Each sample is independent of the other one in the batch.
  auto single = model->forward(x.narrow(0, 1, 1), t.narrow(0, 1, 1), context.narrow(0, 1, 1));
  EXPECT_LT(RelError(single, out.narrow(0, 1, 1)), 1e-5);
  // The text state can be prepared once and reused.
  auto text = model->PrepareText(context);
  EXPECT_TRUE(torch::equal(model->Denoise(x, t, text), out));
  // Per-request states (prepared one row at a time, as the pipeline does at admission), sliced and
  // stacked for a batch, give what the batch's own forward gives.
  auto row0 = model->PrepareText(context.narrow(0, 0, 1));
  auto row1 = SliceTextState(model->PrepareText(context.flip(0)), 0, 1);
  auto stacked = ConcatTextStates({&row0, &row1});
  EXPECT_EQ(stacked.batch(), 2);
  EXPECT_TRUE(torch::equal(model->Denoise(x, t, stacked), out));
  auto swapped = ConcatTextStates({&row1, &row0});
  EXPECT_GT(RelError(model->Denoise(x, t, swapped), out), 1e-3);  // rows follow the given order
  // Timestep and text both matter.
  EXPECT_GT(RelError(model->forward(x, torch::tensor({10.0f, 250.5f}), context), out), 1e-3);
  EXPECT_GT(RelError(model->forward(x, t, context * 2), out), 1e-3);
  // A single timestep broadcasts over the batch.
  auto t1 = model->forward(x, torch::tensor({999.0f}), context);
  EXPECT_TRUE(torch::allclose(t1.narrow(0, 0, 1), out.narrow(0, 0, 1), 1e-5, 1e-6));
}

TEST(DitModelTest, FusedGeluMatchesLibTorchsGeluInFp32AndBf16) {
  WanModel model = MakeModel(Tiny());
  EXPECT_TRUE(model->fused_gelu());  // the default
  torch::manual_seed(4);
  auto x = torch::randn({2, 16, 3, 8, 6});
  auto t = torch::tensor({999.0f, 250.5f});
  auto context = torch::randn({2, 5, 64});
  auto both = [&] {
    torch::NoGradGuard no_grad;
    model->SetFusedGelu(false);
    auto aten = model->forward(x, t, context);
    model->SetFusedGelu(true);
    auto fused = model->forward(x, t, context);
    return std::pair{aten, fused};
  };
  auto [aten32, fused32] = both();
  EXPECT_LT(RelError(fused32, aten32), 1e-5);
  // bf16: LibTorch's kernel rounds after each op, the fused one once, so they differ by about a
  // bf16 rounding of the FFN activations, not more.
  ASSERT_TRUE(model->ToRuntime({torch::kCPU, torch::kBFloat16}).ok());
  auto [aten16, fused16] = both();
  EXPECT_LT(RelError(fused16, aten16), 3e-2);
  EXPECT_LT(RelError(fused16, fused32), 5e-2);
  // Gradients flow through the fused GELU into the FFN's first layer.
  ASSERT_TRUE(model->ToRuntime({torch::kCPU, torch::kFloat}).ok());
  model->SetFusedGelu(true);
  model->zero_grad();
  model->forward(x, t, context).pow(2).mean().backward();
  const auto& block = model->blocks->ptr<WanAttentionBlockImpl>(0);
  auto first_ffn = block->ffn->ptr<torch::nn::LinearImpl>(0);
  ASSERT_TRUE(first_ffn->weight.grad().defined());
  EXPECT_GT(first_ffn->weight.grad().abs().sum().item<double>(), 0.0);
}

TEST(DitModelTest, RejectsBadInputs) {
  WanModel model = MakeModel(Tiny());
  torch::NoGradGuard no_grad;
  auto t = torch::tensor({1.0f});
  EXPECT_THROW(model->forward(torch::randn({1, 8, 1, 4, 4}), t, torch::randn({1, 4, 64})),
               c10::Error);  // channels
  EXPECT_THROW(model->forward(torch::randn({1, 16, 1, 5, 4}), t, torch::randn({1, 4, 64})),
               c10::Error);  // odd height
  EXPECT_THROW(model->forward(torch::randn({1, 16, 1, 4, 4}), t, torch::randn({1, 33, 64})),
               c10::Error);  // longer than text_len
  EXPECT_THROW(model->forward(torch::randn({1, 16, 1, 4, 4}), t, torch::randn({1, 4, 32})),
               c10::Error);  // text_dim
  WanConfig bad = Tiny();
  bad.num_heads = 3;
  EXPECT_EQ(CreateWanModel(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DitModelTest, Bf16RuntimeKeepsNormsAndModulationInFp32) {
  WanModel model = MakeModel(Tiny());
  torch::NoGradGuard no_grad;
  auto x = torch::randn({1, 16, 2, 4, 4});
  auto t = torch::tensor({700.0f});
  auto context = torch::randn({1, 6, 64});
  auto reference = model->forward(x, t, context);
  ASSERT_TRUE(model->ToRuntime({torch::kCPU, torch::kBFloat16}).ok());
  EXPECT_EQ(model->compute_dtype(), torch::kBFloat16);
  auto params = model->named_parameters();
  EXPECT_EQ(params["blocks.0.self_attn.q.weight"].scalar_type(), torch::kBFloat16);
  EXPECT_EQ(params["blocks.0.ffn.2.weight"].scalar_type(), torch::kBFloat16);
  EXPECT_EQ(params["blocks.0.self_attn.norm_q.weight"].scalar_type(), torch::kFloat);
  EXPECT_EQ(params["blocks.0.norm3.weight"].scalar_type(), torch::kFloat);
  EXPECT_EQ(params["blocks.0.modulation"].scalar_type(), torch::kFloat);
  EXPECT_EQ(params["time_projection.1.weight"].scalar_type(), torch::kFloat);
  EXPECT_EQ(params["head.head.weight"].scalar_type(), torch::kFloat);
  auto out = model->forward(x, t, context);
  EXPECT_EQ(out.scalar_type(), torch::kFloat);
  EXPECT_LT(RelError(out, reference), 5e-2);
  EXPECT_EQ(model->ToRuntime({torch::kCPU, torch::kInt}).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(model->ToRuntime({torch::kCPU, torch::kFloat}).ok());
  EXPECT_EQ(model->compute_dtype(), torch::kFloat);
}

// Training (the post-training jobs) needs gradients through every op, including the chunked
// softmax attention, which takes an out-of-place path under GradMode.
TEST(DitModelTest, TrainsThroughAutograd) {
  WanModel model = MakeModel(Tiny());
  auto out = model->forward(torch::randn({1, 16, 1, 4, 4}), torch::tensor({300.0f}),
                            torch::randn({1, 3, 64}));
  out.square().mean().backward();
  auto grad = model->named_parameters()["blocks.0.self_attn.q.weight"].grad();
  ASSERT_TRUE(grad.defined());
  EXPECT_GT(grad.abs().sum().item<float>(), 0.0f);
}

}  // namespace
}  // namespace linvideo::core::wan

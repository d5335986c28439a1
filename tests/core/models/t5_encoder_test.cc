#include "core/models/wan/t5_encoder.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <set>
#include <string>

#include "core/io/state_dict.h"

namespace linvideo::core::wan {
namespace {

T5Config Tiny() { return *T5Config::Named("tiny"); }

T5Encoder MakeTiny(const T5Config& c = Tiny(), const DeviceOptions& o = {}) {
  torch::manual_seed(0);
  auto e = CreateT5Encoder(c, o);
  EXPECT_TRUE(e.ok()) << e.status();
  return *e;
}

double MaxRelErr(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

TEST(T5EncoderTest, ParameterNamesAreTheOfficialOnes) {
  T5Encoder enc = MakeTiny();
  std::set<std::string> names;
  for (const auto& [name, t] : io::StateDict(*enc)) names.insert(name);
  std::set<std::string> expected = {"token_embedding.weight", "norm.weight"};
  for (int i = 0; i < 2; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    for (const char* s : {"norm1.weight", "attn.q.weight", "attn.k.weight", "attn.v.weight",
                          "attn.o.weight", "norm2.weight", "ffn.gate.0.weight", "ffn.fc1.weight",
                          "ffn.fc2.weight", "pos_embedding.embedding.weight"}) {
      expected.insert(b + s);
    }
  }
  EXPECT_EQ(names, expected);
  auto sd = io::StateDict(*enc);
  EXPECT_EQ(sd["blocks.1.ffn.gate.0.weight"].sizes(), (std::vector<int64_t>{48, 32}));
  EXPECT_EQ(sd["blocks.1.ffn.fc2.weight"].sizes(), (std::vector<int64_t>{32, 48}));
  EXPECT_EQ(sd["blocks.0.pos_embedding.embedding.weight"].sizes(), (std::vector<int64_t>{32, 4}));

  T5Config shared = Tiny();
  shared.shared_pos = true;
  auto sd2 = io::StateDict(*MakeTiny(shared));
  EXPECT_EQ(sd2.count("pos_embedding.embedding.weight"), 1u);
  EXPECT_EQ(sd2.count("blocks.0.pos_embedding.embedding.weight"), 0u);
}

TEST(T5EncoderTest, ForwardShapes) {
  T5Encoder enc = MakeTiny();
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(0, 256, {3, 7}, torch::kLong);
  auto out = enc->forward(ids, torch::ones({3, 7}, torch::kLong));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{3, 7, 32}));
  EXPECT_EQ(out.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  // Without a mask: the same as an all-ones mask.
  EXPECT_TRUE(torch::equal(enc->forward(ids), out));
}

TEST(T5EncoderTest, BidirectionalBucketsByHand) {
  // 32 buckets -> 16 per direction, 8 exact; log buckets: 8 + int(log(d/8)/log(128/8)*8), max 15.
  // Negative offsets (key before query) keep their bucket, positive ones add 16.
  const std::vector<int64_t> rel = {0,  -1,  1,  -7,   7,    -8,   8,     -12,
                                    12, -20, 20, -100, -127, -128, -1000, 1000};
  const std::vector<int64_t> want = {0, 1, 17, 7, 23, 8, 24, 9, 25, 10, 26, 15, 15, 15, 15, 31};
  auto got = T5RelativeEmbeddingImpl::Bucket(torch::tensor(rel), 32, 128, true);
  for (size_t i = 0; i < rel.size(); ++i) {
    EXPECT_EQ(got[i].item<int64_t>(), want[i]) << "relative position " << rel[i];
  }
  // -12: log(1.5)/log(16)*8 = 1.17 -> 9; -100: log(12.5)/log(16)*8 = 7.29 -> 15.
  // Unidirectional (decoder style): only non-positive offsets count, 16 exact.
  auto uni = T5RelativeEmbeddingImpl::Bucket(
      torch::tensor(std::vector<int64_t>{-3, 5, -15, -16, -40}), 32, 128, false);
  // -40: 16 + int(log(40/16)/log(8)*16) = 16 + 7 = 23.
  EXPECT_EQ(uni[0].item<int64_t>(), 3);
  EXPECT_EQ(uni[1].item<int64_t>(), 0);
  EXPECT_EQ(uni[2].item<int64_t>(), 15);
  EXPECT_EQ(uni[3].item<int64_t>(), 16);
  EXPECT_EQ(uni[4].item<int64_t>(), 23);
}

TEST(T5EncoderTest, PositionBiasLooksUpKeyMinusQuery) {
  T5RelativeEmbedding pe(32, 4, 128, true);
  auto bias = pe->forward(5, 6);  // [1, 4, 5, 6]
  ASSERT_EQ(bias.sizes(), (std::vector<int64_t>{1, 4, 5, 6}));
  auto table = pe->embedding->weight;
  auto buckets =
      T5RelativeEmbeddingImpl::Bucket(torch::tensor(std::vector<int64_t>{-4, 2}), 32, 128, true);
  // (i=4, j=0): j - i = -4;  (i=1, j=3): +2.
  EXPECT_TRUE(torch::equal(bias[0].select(1, 4).select(1, 0), table[buckets[0].item<int64_t>()]));
  EXPECT_TRUE(torch::equal(bias[0].select(1, 1).select(1, 3), table[buckets[1].item<int64_t>()]));
}

// Independent reference written from the official formulas (einsum, explicit GELU), one batch row.
torch::Tensor Reference(io::TensorMap sd, const T5Config& c, torch::Tensor ids, torch::Tensor m) {
  auto norm = [&](torch::Tensor x, const std::string& w) {
    return sd[w] * (x / torch::sqrt(x.pow(2).mean(-1, true) + c.eps));
  };
  const int64_t l = ids.size(1), n = c.num_heads, d = c.head_dim();
  auto x = sd["token_embedding.weight"].index_select(0, ids[0]).unsqueeze(0);  // [1, L, dim]
  auto pos = torch::arange(l).unsqueeze(0) - torch::arange(l).unsqueeze(1);
  auto bucket = T5RelativeEmbeddingImpl::Bucket(pos, c.num_buckets, c.max_distance, true);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    auto h = norm(x, b + "norm1.weight");
    auto q = torch::matmul(h, sd[b + "attn.q.weight"].t()).view({1, l, n, d});
    auto k = torch::matmul(h, sd[b + "attn.k.weight"].t()).view({1, l, n, d});
    auto v = torch::matmul(h, sd[b + "attn.v.weight"].t()).view({1, l, n, d});
    auto bias = sd[b + "pos_embedding.embedding.weight"].index({bucket}).permute({2, 0, 1});
    auto s = torch::einsum("binc,bjnc->bnij", {q, k}) + bias.unsqueeze(0);
    s = s.masked_fill(m.view({1, 1, 1, l}) == 0, -1e30);
    auto a = torch::einsum("bnij,bjnc->binc", {torch::softmax(s, -1), v}).reshape({1, l, n * d});
    x = x + torch::matmul(a, sd[b + "attn.o.weight"].t());
    h = norm(x, b + "norm2.weight");
    auto g = torch::matmul(h, sd[b + "ffn.gate.0.weight"].t());
    g = 0.5 * g * (1 + torch::tanh(std::sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)));
    x = x + torch::matmul(torch::matmul(h, sd[b + "ffn.fc1.weight"].t()) * g,
                          sd[b + "ffn.fc2.weight"].t());
  }
  return norm(x, "norm.weight");
}

TEST(T5EncoderTest, MatchesIndependentReference) {
  T5Config c = Tiny();
  T5Encoder enc = MakeTiny(c);
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(0, 256, {1, 9}, torch::kLong);
  auto mask = torch::ones({1, 9}, torch::kLong);
  mask.index_put_({0, torch::indexing::Slice(6)}, 0);
  auto sd = io::StateDict(*enc);
  auto want = Reference(sd, c, ids, mask);
  auto got = enc->forward(ids, mask);
  EXPECT_LT(MaxRelErr(got, want), 1e-5);
}

TEST(T5EncoderTest, PaddingDoesNotChangeRealTokens) {
  T5Encoder enc = MakeTiny();
  torch::NoGradGuard no_grad;
  auto short_ids = torch::randint(3, 256, {1, 5}, torch::kLong);
  auto alone = enc->forward(short_ids, torch::ones({1, 5}, torch::kLong));  // [1, 5, dim]

  // Same text padded to 12 with pad ids (0), and with junk in the padding: real rows unchanged.
  auto padded = torch::zeros({2, 12}, torch::kLong);
  padded.index_put_({torch::indexing::Slice(), torch::indexing::Slice(0, 5)}, short_ids);
  padded.index_put_({1, torch::indexing::Slice(5)}, torch::randint(3, 256, {7}, torch::kLong));
  auto mask = torch::zeros({2, 12}, torch::kLong);
  mask.index_put_({torch::indexing::Slice(), torch::indexing::Slice(0, 5)}, 1);
  auto out = enc->forward(padded, mask);
  auto real = out.index({torch::indexing::Slice(), torch::indexing::Slice(0, 5)});
  EXPECT_LT(MaxRelErr(real[0], alone[0]), 1e-5);
  EXPECT_LT(MaxRelErr(real[1], alone[0]), 1e-5);
  // Padded query rows are computed (official behaviour), not zero.
  EXPECT_GT(out[0][8].abs().max().item<float>(), 0.0f);

  // Without the mask the junk leaks into the real rows: the mask is what keeps them equal.
  auto unmasked = enc->forward(padded);
  EXPECT_GT(MaxRelErr(unmasked[1].slice(0, 0, 5), alone[0]), 1e-3);
}

TEST(T5EncoderTest, EncodeZeroesPaddingAndValidates) {
  T5Encoder enc = MakeTiny();
  auto ids = torch::randint(3, 256, {2, 6}, torch::kLong);
  auto mask = torch::ones({2, 6}, torch::kLong);
  mask.index_put_({1, torch::indexing::Slice(4)}, 0);
  auto out = enc->Encode(ids, mask);
  ASSERT_TRUE(out.ok()) << out.status();
  torch::NoGradGuard no_grad;
  auto raw = enc->forward(ids, mask);
  EXPECT_TRUE(torch::equal((*out)[0], raw[0]));
  EXPECT_TRUE(torch::equal((*out)[1].slice(0, 0, 4), raw[1].slice(0, 0, 4)));
  EXPECT_EQ((*out)[1].slice(0, 4).abs().max().item<float>(), 0.0f);

  auto bad = ids.clone();
  bad[0][0] = 256;
  auto r = enc->Encode(bad, mask);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("[0, 256)"), std::string::npos) << r.status();
  EXPECT_FALSE(enc->Encode(ids.view({12}), mask.view({12})).ok());
  EXPECT_FALSE(enc->Encode(ids, mask.slice(1, 0, 5)).ok());
  EXPECT_FALSE(enc->Encode(ids.to(torch::kFloat), mask).ok());
}

TEST(T5EncoderTest, Bf16WeightsStayClose) {
  T5Encoder ref = MakeTiny();
  DeviceOptions bf16;
  bf16.dtype = torch::kBFloat16;
  T5Encoder enc = MakeTiny(Tiny(), bf16);
  auto sd = io::StateDict(*enc);
  EXPECT_EQ(sd["blocks.0.attn.q.weight"].scalar_type(), torch::kBFloat16);
  EXPECT_EQ(sd["token_embedding.weight"].scalar_type(), torch::kBFloat16);
  EXPECT_EQ(sd["blocks.0.norm1.weight"].scalar_type(), torch::kFloat);  // norms stay fp32
  ASSERT_TRUE(LoadT5Weights(*enc, io::StateDict(*ref)).ok());
  auto ids = torch::randint(0, 256, {2, 8}, torch::kLong);
  auto mask = torch::ones({2, 8}, torch::kLong);
  auto a = enc->Encode(ids, mask), b = ref->Encode(ids, mask);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->scalar_type(), torch::kFloat);
  const double err = MaxRelErr(*a, *b);
  EXPECT_LT(err, 5e-2);
  EXPECT_GT(err, 0.0);  // really ran with rounded weights
}

TEST(T5EncoderTest, CreateRejectsBadConfigAndDtype) {
  T5Config c = Tiny();
  c.num_heads = 5;
  EXPECT_FALSE(CreateT5Encoder(c).ok());
  DeviceOptions o;
  o.dtype = torch::kInt;
  auto e = CreateT5Encoder(Tiny(), o);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("bf16"), std::string::npos);
}

}  // namespace
}  // namespace linvideo::core::wan

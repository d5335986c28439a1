#include "core/io/state_dict.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace linvideo::core::io {
namespace {

struct BlockImpl : torch::nn::Module {
  BlockImpl() {
    fc = register_module("fc", torch::nn::Linear(4, 3));
    norm = register_module("norm", torch::nn::BatchNorm1d(3));
  }
  torch::nn::Linear fc{nullptr};
  torch::nn::BatchNorm1d norm{nullptr};
};
TORCH_MODULE(Block);

struct NetImpl : torch::nn::Module {
  NetImpl() {
    for (int i = 0; i < 2; ++i) blocks->push_back(Block());
    register_module("blocks", blocks);
    scale = register_parameter("scale", torch::ones({3}));
  }
  torch::nn::ModuleList blocks;
  torch::Tensor scale;
};
TORCH_MODULE(Net);

TensorMap Checkpoint(const Net& like, torch::ScalarType dtype = torch::kFloat32) {
  torch::manual_seed(3);
  TensorMap m;
  for (const auto& [name, t] : StateDict(*like)) {
    m[name] = t.is_floating_point() ? torch::randn(t.sizes()).to(dtype) : t.clone() + 7;
  }
  return m;
}

TEST(StateDictTest, NamesAreRecursiveAndIncludeBuffers) {
  Net net;
  TensorMap sd = StateDict(*net);
  EXPECT_TRUE(sd.count("scale"));
  EXPECT_TRUE(sd.count("blocks.0.fc.weight"));
  EXPECT_TRUE(sd.count("blocks.1.fc.bias"));
  EXPECT_TRUE(sd.count("blocks.1.norm.running_mean"));
  EXPECT_TRUE(sd.count("blocks.0.norm.num_batches_tracked"));
  EXPECT_EQ(sd.size(), 1u + 2 * (2 + 5));
  // Views, not copies.
  EXPECT_EQ(sd.at("scale").data_ptr(), net->scale.data_ptr());
}

TEST(StateDictTest, LeavesOutUndefinedSlots) {
  torch::nn::Linear fc(torch::nn::LinearOptions(4, 3).bias(false));
  TensorMap sd = StateDict(*fc);
  EXPECT_EQ(sd.size(), 1u);
  EXPECT_TRUE(sd.count("weight"));
  EXPECT_TRUE(LoadStateDict(*fc, {{"weight", torch::zeros({3, 4})}}).ok());
}

TEST(StateDictTest, LoadsWithDtypeConversion) {
  Net net;
  TensorMap ckpt = Checkpoint(net, torch::kBFloat16);
  ASSERT_TRUE(LoadStateDict(*net, ckpt).ok());
  TensorMap sd = StateDict(*net);
  for (const auto& [name, t] : ckpt) {
    EXPECT_EQ(sd.at(name).scalar_type(),
              name.find("num_batches") != std::string::npos ? torch::kInt64 : torch::kFloat32);
    EXPECT_TRUE(torch::equal(sd.at(name), t.to(sd.at(name).scalar_type()))) << name;
  }
  EXPECT_TRUE(net->scale.requires_grad());  // still a trainable parameter
}

TEST(StateDictTest, ReportsMissingUnexpectedAndShapeMismatches) {
  Net net;
  TensorMap ckpt = Checkpoint(net);
  ckpt.erase("blocks.0.fc.bias");
  ckpt["extra.weight"] = torch::zeros({1});
  ckpt["blocks.1.fc.weight"] = torch::zeros({3, 5});
  const torch::Tensor before = net->blocks[0]->as<Block>()->fc->weight.clone();
  absl::Status s = LoadStateDict(*net, ckpt);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(s.message());
  EXPECT_NE(msg.find("1 missing from the checkpoint: blocks.0.fc.bias"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1 unexpected (not in the module): extra.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("blocks.1.fc.weight (checkpoint [3, 5] vs module [3, 4])"), std::string::npos)
      << msg;
  // Nothing was written.
  EXPECT_TRUE(torch::equal(net->blocks[0]->as<Block>()->fc->weight, before));

  // Non-strict: missing/unexpected are tolerated, shape mismatches are not.
  LoadOptions loose;
  loose.strict = false;
  EXPECT_EQ(LoadStateDict(*net, ckpt, loose).code(), absl::StatusCode::kInvalidArgument);
  ckpt["blocks.1.fc.weight"] = torch::zeros({3, 4});
  EXPECT_TRUE(LoadStateDict(*net, ckpt, loose).ok());
  EXPECT_TRUE(torch::equal(net->blocks[1]->as<Block>()->fc->weight, torch::zeros({3, 4})));
}

TEST(StateDictTest, ListsAtMostTenNamesWithCounts) {
  Net net;
  absl::Status s = LoadStateDict(*net, {});
  const std::string msg(s.message());
  EXPECT_NE(msg.find("15 missing from the checkpoint"), std::string::npos) << msg;
  EXPECT_NE(msg.find("... (5 more)"), std::string::npos) << msg;
  LoadOptions ignore;
  ignore.ignore_missing = [](const std::string& n) { return n != "scale"; };
  absl::Status only = LoadStateDict(*net, {}, ignore);
  EXPECT_NE(only.message().find("1 missing from the checkpoint: scale"), std::string::npos) << only;
  EXPECT_TRUE(
      LoadStateDict(*net, {{"scale", torch::full({3}, 2.0, torch::kFloat64)}}, ignore).ok());
  EXPECT_TRUE(torch::equal(net->scale, torch::full({3}, 2.0f)));
}

TEST(StateDictTest, RenameKeys) {
  TensorMap in = {
      {"model.a", torch::ones({1})}, {"model.b", torch::ones({2})}, {"drop.me", torch::ones({3})}};
  auto strip = [](const std::string& k) -> std::optional<std::string> {
    if (k.rfind("model.", 0) == 0) return k.substr(6);
    return std::nullopt;
  };
  auto out = RenameKeys(in, strip);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->size(), 2u);
  EXPECT_EQ(out->at("b").numel(), 2);
  auto clash = RenameKeys(in, [](const std::string&) { return std::optional<std::string>("x"); });
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(clash.status().message().find("both map to \"x\""), std::string::npos);
  auto empty = RenameKeys(in, [](const std::string&) { return std::optional<std::string>(""); });
  EXPECT_FALSE(empty.ok());
}

}  // namespace
}  // namespace linvideo::core::io

// The selective-transfer student: unpinned layers hybrid, teacher weights copied, and at r = 1 it
// computes exactly the teacher's output; the gates and feature maps receive gradients.
#include "core/posttrain/student.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "core/models/wan/wan_config.h"

namespace linvideo::core::posttrain {
namespace {

wan::WanModel Teacher() {
  wan::WanConfig c = *wan::NamedDitConfig("tiny");
  c.SetNumLayers(4);
  torch::manual_seed(5);
  return *wan::CreateWanModel(c);
}

TEST(StudentTest, StartsAsTheTeacherWithHybridUnpinnedLayers) {
  wan::WanModel teacher = Teacher();
  const SelectionOptions o{4, 2, {0}};
  auto student = MakeHybridStudent(teacher, o);
  ASSERT_TRUE(student.ok()) << student.status();
  const auto& kinds = (*student)->config().attention_kinds;
  EXPECT_EQ(kinds[0], attention::AttentionKind::kSoftmax);
  for (int l = 1; l < 4; ++l) EXPECT_EQ(kinds[l], attention::AttentionKind::kHybrid) << l;
  auto gates = HybridGates(*student, o);
  ASSERT_TRUE(gates.ok()) << gates.status();
  ASSERT_EQ(gates->size(), 3u);
  for (const auto& r : *gates) EXPECT_FLOAT_EQ(r.item<float>(), 1.0f);

  torch::manual_seed(1);
  auto x = torch::randn({2, 16, 3, 8, 8});
  auto t = torch::tensor({900.0f, 100.0f});
  auto context = torch::randn({2, 5, 64});
  {
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::equal((*student)->forward(x, t, context), teacher->forward(x, t, context)));
  }
  // Training: dL/dr = <dL/do, softmax - linear> reaches every gate. The feature maps' gradient is
  // scaled by (1 - r), so at r = 1 it is exactly zero: they learn once a gate leaves 1.
  auto feature_map_grad = [&](wan::WanModel& m) {
    double total = 0;
    for (const auto& item : m->named_parameters()) {
      if (item.key().find("feature_map_q") != std::string::npos && item.value().grad().defined())
        total += item.value().grad().abs().sum().item<double>();
    }
    return total;
  };
  (*student)->forward(x, t, context).pow(2).mean().backward();
  for (const auto& r : *gates) {
    ASSERT_TRUE(r.grad().defined());
    EXPECT_NE(r.grad().item<float>(), 0.0f);
  }
  EXPECT_EQ(feature_map_grad(*student), 0.0);
  auto near_one = MakeHybridStudent(teacher, o, 0.99);
  ASSERT_TRUE(near_one.ok());
  (*near_one)->forward(x, t, context).pow(2).mean().backward();
  EXPECT_GT(feature_map_grad(*near_one), 0.0);

  // Halfway gates mix in the (untrained) linear branch: the output moves away from the teacher's.
  auto half = MakeHybridStudent(teacher, o, 0.5);
  ASSERT_TRUE(half.ok());
  torch::NoGradGuard no_grad;
  EXPECT_FALSE(torch::allclose((*half)->forward(x, t, context), teacher->forward(x, t, context)));
}

TEST(StudentTest, RefusesSelectionsThatDoNotFitTheTeacher) {
  wan::WanModel teacher = Teacher();
  auto wrong_size = MakeHybridStudent(teacher, {6, 2, {0}});
  EXPECT_EQ(wrong_size.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(wrong_size.status().message().find("the teacher has 4"), std::string::npos)
      << wrong_size.status();
  auto too_many = MakeHybridStudent(teacher, {4, 4, {0}});
  EXPECT_NE(too_many.status().message().find("use 1..3"), std::string::npos) << too_many.status();
  EXPECT_FALSE(MakeHybridStudent(teacher, {4, 2, {0}}, 1.5).ok());
  // A model whose layers are all softmax has no gates.
  EXPECT_EQ(HybridGates(teacher, {4, 2, {0}}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace linvideo::core::posttrain

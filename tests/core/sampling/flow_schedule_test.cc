#include "core/sampling/flow_schedule.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace linvideo::core::sampling {
namespace {

// Reference lists produced at development time with numpy 1.24 running the official formula of
// FlowUniPCMultistepScheduler (wan/utils/fm_solvers_unipc.py): sigma_max = float(float32(0.999)),
// sigmas = np.linspace(sigma_max, 0, N + 1)[:-1]; sigmas = s * sigmas / (1 + (s - 1) * sigmas);
// timesteps = (sigmas * 1000).astype(np.int64); final sigmas float32 with 0 appended.
const std::vector<int64_t> kSteps50Shift5 = {
    999, 995, 991, 987, 982, 978, 973, 968, 963, 957, 952, 946, 940, 934, 927, 920, 913,
    906, 898, 890, 882, 873, 863, 854, 843, 833, 821, 809, 796, 783, 768, 753, 737, 720,
    701, 681, 660, 636, 611, 584, 555, 522, 487, 448, 405, 356, 302, 241, 172, 92};
const std::vector<int64_t> kSteps4Shift5 = {999, 937, 833, 624};
const std::vector<int64_t> kSteps10Shift3 = {999, 963, 922, 874, 817, 749, 666, 562, 428, 249};
// float32 sigmas (printed with %.9g) for N = 10, s = 3.
const std::vector<double> kSigmas10Shift3 = {
    0.999666452, 0.963941097, 0.922721684, 0.87463522, 0.817809701, 0.749624789, 0.666296124,
    0.562148333, 0.428265214, 0.249791637, 0};

TEST(FlowScheduleTest, OfficialTimesteps50StepsShift5) {
  auto s = MakeFlowSchedule(50, 5.0);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->steps(), 50);
  EXPECT_EQ(s->timesteps, kSteps50Shift5);
  ASSERT_EQ(s->sigmas.size(), 51u);
  EXPECT_EQ(s->sigmas.back(), 0.0);
  EXPECT_FLOAT_EQ(s->sigmas[0], 0.999799848f);
  EXPECT_FLOAT_EQ(s->sigmas[49], 0.0925068557f);
}

TEST(FlowScheduleTest, OfficialTimestepsShortSchedules) {
  auto s4 = MakeFlowSchedule(4, 5.0);
  ASSERT_TRUE(s4.ok());
  EXPECT_EQ(s4->timesteps, kSteps4Shift5);
  auto s10 = MakeFlowSchedule(10, 3.0);
  ASSERT_TRUE(s10.ok());
  EXPECT_EQ(s10->timesteps, kSteps10Shift3);
  ASSERT_EQ(s10->sigmas.size(), kSigmas10Shift3.size());
  for (size_t i = 0; i < kSigmas10Shift3.size(); ++i) {
    // Stored values are float32-rounded: they must equal the float32 of the reference exactly.
    EXPECT_EQ(s10->sigmas[i], static_cast<double>(static_cast<float>(kSigmas10Shift3[i]))) << i;
  }
}

TEST(FlowScheduleTest, SigmasAreFloat32DecreasingAndMatchTimesteps) {
  for (double shift : {1.0, 3.0, 5.0, 8.0}) {
    for (int64_t n : {1, 2, 7, 50, 100}) {
      auto s = MakeFlowSchedule(n, shift);
      ASSERT_TRUE(s.ok());
      ASSERT_EQ(static_cast<int64_t>(s->sigmas.size()), n + 1);
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_EQ(s->sigmas[i], static_cast<double>(static_cast<float>(s->sigmas[i])));
        EXPECT_GT(s->sigmas[i], s->sigmas[i + 1]);
        // The integer timestep is the truncated sigma * 1000 (within float32 rounding).
        EXPECT_NEAR(s->sigmas[i] * 1000.0, static_cast<double>(s->timesteps[i]) + 0.5, 0.5 + 1e-3);
      }
      EXPECT_EQ(s->timesteps[0], 999);
    }
  }
}

TEST(FlowScheduleTest, ShiftOneIsLinear) {
  auto s = MakeFlowSchedule(2, 1.0);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->timesteps, (std::vector<int64_t>{999, 499}));
  EXPECT_FLOAT_EQ(s->sigmas[1], 0.4995f);
  EXPECT_DOUBLE_EQ(ShiftSigma(0.5, 1.0), 0.5);
  EXPECT_DOUBLE_EQ(ShiftSigma(0.5, 3.0), 1.5 / 2.0);
}

TEST(FlowScheduleTest, RejectsBadArguments) {
  EXPECT_EQ(MakeFlowSchedule(0, 5.0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeFlowSchedule(-3, 5.0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeFlowSchedule(kMaxSteps + 1, 5.0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeFlowSchedule(10, 0.0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeFlowSchedule(10, NAN).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeFlowSchedule(10, INFINITY).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace linvideo::core::sampling

// UniPC against trajectories recorded from the official Wan 2.1 FlowUniPCMultistepScheduler
// (wan/utils/fm_solvers_unipc.py, run at development time with PyTorch 1.13 CPU and the diffusers
// imports stubbed; see testdata/README.md). The synthetic model is v = (x - mu) * k_i - mu, made of
// IEEE-exact elementwise operations so both sides feed the solver the same model outputs.
#include <ATen/ATen.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/sampling/flow_schedule.h"
#include "core/sampling/unipc.h"
#include "gtest/gtest.h"

namespace linvideo::core::sampling {
namespace {

struct Record {
  std::string name;
  std::vector<double> values;
};

std::vector<Record> ReadRecords(const std::string& path) {
  std::vector<Record> records;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    Record r;
    size_t n = 0;
    ss >> r.name >> n;
    r.values.resize(n);
    for (double& v : r.values) ss >> v;
    if (ss) records.push_back(std::move(r));
  }
  return records;
}

torch::Tensor ToTensor(const std::vector<double>& v) {
  return torch::tensor(v, at::kDouble).to(at::kFloat);  // values were printed from float32
}

TEST(UniPCParityTest, MatchesOfficialSchedulerTrajectories) {
  const auto records = ReadRecords(std::string(LINVIDEO_SOURCE_DIR) +
                                   "/tests/core/sampling/testdata/official_unipc_trajectories.txt");
  ASSERT_GE(records.size(), 2u) << "missing fixture";
  ASSERT_EQ(records[0].name, "x_T");
  ASSERT_EQ(records[1].name, "mu");
  const torch::Tensor x_T = ToTensor(records[0].values).reshape({1, 2, 3, 4});
  const torch::Tensor mu = ToTensor(records[1].values).reshape({1, 2, 3, 4});
  int cases = 0;
  for (size_t r = 2; r + 3 < records.size() + 1; r += 4) {
    ASSERT_EQ(records[r].name, "case");
    const int64_t steps = static_cast<int64_t>(records[r].values[0]);
    const double shift = records[r].values[1];
    const std::vector<double>& official_t = records[r + 1].values;
    const std::vector<double>& k = records[r + 2].values;
    const torch::Tensor official = ToTensor(records[r + 3].values).reshape({steps, 1, 2, 3, 4});

    auto schedule = MakeFlowSchedule(steps, shift);
    ASSERT_TRUE(schedule.ok());
    ASSERT_EQ(static_cast<size_t>(steps), official_t.size());
    for (int64_t i = 0; i < steps; ++i) {
      EXPECT_EQ(schedule->timesteps[i], static_cast<int64_t>(official_t[i])) << i;
    }

    // float32 coefficients reproduce the official arithmetic; double ones are the more accurate
    // alternative and must stay close.
    for (bool f32 : {true, false}) {
      UniPCOptions options;
      options.float32_coefficients = f32;
      UniPCState state;
      torch::Tensor x = x_T;
      double max_diff = 0;
      for (int64_t i = 0; i < steps; ++i) {
        const torch::Tensor v = (x - mu) * static_cast<double>(static_cast<float>(k[i])) - mu;
        auto next = UniPCStep(*schedule, state, i, v, x, options);
        ASSERT_TRUE(next.ok()) << next.status();
        x = *next;
        max_diff = std::max(max_diff, (x - official[i]).abs().max().item<double>());
      }
      std::printf("UniPC N=%lld shift=%g, %s coefficients: max |ours - official| = %.3g\n",
                  static_cast<long long>(steps), shift, f32 ? "float32" : "double", max_diff);
      EXPECT_LT(max_diff, f32 ? 1e-5 : 1e-3) << "N=" << steps << " shift=" << shift;
    }
    ++cases;
  }
  EXPECT_EQ(cases, 4);
}

}  // namespace
}  // namespace linvideo::core::sampling

// server/job_spec.h: what a job spec may hold (every refusal names what is allowed), the JSON
// form job.json keeps (a round trip changes nothing), and jobs.cpus lists.
#include "server/job_spec.h"

#include <gtest/gtest.h>

#include <limits>

namespace linvideo::server {
namespace {

JobSpec Good() {
  JobSpec s;
  s.base = "default";
  s.convert.linear_layers = 3;
  return s;
}

void ExpectRefused(const JobSpec& s, const std::string& needle) {
  absl::Status st = ValidateJobSpec(s);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << needle;
  EXPECT_NE(std::string(st.message()).find(needle), std::string::npos) << st.message();
}

TEST(JobSpecTest, GoodSpecPasses) { EXPECT_TRUE(ValidateJobSpec(Good()).ok()); }

TEST(JobSpecTest, RefusalsSayWhatIsAllowed) {
  JobSpec s = Good();
  s.job_id = "a b";
  ExpectRefused(s, "A-Z a-z 0-9 _ -");
  s = Good();
  s.base = "";
  ExpectRefused(s, "served model");
  s = Good();
  s.output_name = "../escape";
  ExpectRefused(s, "directly under the checkpoint root");
  s = Good();
  s.output_name = "a/b";
  ExpectRefused(s, "no '/'");
  s = Good();
  s.convert.linear_layers = 0;
  ExpectRefused(s, ">= 1");
  s = Good();
  s.convert.steps = -5;
  ExpectRefused(s, "convert.steps=-5: must be >= 0");
  s = Good();
  s.convert.trajectories = -1;
  ExpectRefused(s, "convert.trajectories");
  s = Good();
  s.convert.objective = "kl";
  ExpectRefused(s, "allowed adm, mse");
  s = Good();
  s.convert.select = "best";
  ExpectRefused(s, "allowed auto, heuristic or layers:");
  s = Good();
  s.convert.lr = -1;
  ExpectRefused(s, "convert.lr");
  s = Good();
  s.gate.prompts = "some";
  ExpectRefused(s, "allowed seen, heldout, all");
  s = Good();
  s.gate.prompts = "seen";
  s.gate.max_drop["fid"] = 0.1;
  ExpectRefused(s, "allowed: adherence, all_correct, consistency, quality");
  s = Good();
  s.gate.max_drop["adherence"] = 0.1;  // without prompts: nothing would be evaluated
  ExpectRefused(s, "set gate.prompts");
  s = Good();
  s.activate_as = "x/y";
  ExpectRefused(s, "activate_as");
}

TEST(JobSpecTest, JsonRoundTrip) {
  JobSnapshot j;
  j.id = "job-7";
  j.spec = Good();
  j.spec.job_id = "nightly-1";
  j.spec.convert.select = "layers:1,2,3";
  j.spec.convert.lr = 2.5e-5;
  j.spec.convert.seed = 42;
  j.spec.activate = true;
  j.spec.gate.prompts = "heldout";
  j.spec.gate.max_drop = {{"adherence", 0.05}, {"consistency", -0.01}};
  j.spec.gate.min_psnr = 20;
  j.state = JobState::kGateFailed;
  j.progress.stage = "convert";
  j.progress.step = 120;
  j.progress.total = 400;
  j.progress.losses = {{"gap", 0.01}};
  j.progress.gate_layers = {1, 2};
  j.progress.r = {0.9, 0.1};
  j.stage_index = 1;
  j.base_dir = "/models/default";
  j.real_dir = "/models/teacher";
  j.output_path = "default-linvideo-v3";
  j.base_scores = {{"adherence", 0.9}};
  j.created_ms = 123;
  auto back = SnapshotFromJson(SnapshotToJson(j));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(SnapshotToJson(*back), SnapshotToJson(j));
  EXPECT_EQ(back->state, JobState::kGateFailed);
  EXPECT_EQ(back->spec.gate.max_drop.at("consistency"), -0.01);
  EXPECT_FALSE(SnapshotFromJson({{"id", "x"}}).ok());  // no spec, no state
}

// Numbers that are not integers of the field's range are refused, not converted (a float-to-int
// conversion out of range is undefined; job_spec_fuzz found 8.9e70 as linear_layers).
TEST(JobSpecTest, JsonNumbersMustFitTheirFields) {
  const nlohmann::json good = SpecToJson(Good());
  for (const nlohmann::json& bad :
       {nlohmann::json{{"convert", {{"linear_layers", 8.9e70}}}},
        nlohmann::json{{"convert", {{"linear_layers", 2.5}}}},
        nlohmann::json{{"convert", {{"steps", 18446744073709551615ULL}}}},
        nlohmann::json{{"convert", {{"seed", -1}}}},
        nlohmann::json{{"distill", {{"timesteps", {1000, 1e30}}}}},
        nlohmann::json{{"gate", {{"seeds", "3"}}}}}) {
    nlohmann::json spec = good;
    spec.merge_patch(bad);
    auto parsed = SpecFromJson(spec);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad.dump();
  }
  nlohmann::json spec = good;
  spec["convert"]["steps"] = 1e3;  // a double, even a whole one, is not an integer field's value
  EXPECT_FALSE(SpecFromJson(spec).ok());
}

// A distillation spec: no linear_layers needed; its own options are checked and survive job.json.
TEST(JobSpecTest, DistillSpecsValidateAndRoundTrip) {
  JobSpec d;
  d.base = "default-linvideo";
  d.kind = JobKind::kDistill;
  EXPECT_TRUE(ValidateJobSpec(d).ok());
  d.distill.timesteps = {1000, 750, 500, 250};
  d.distill.steps = 400;
  d.distill.fake_updates = 5;
  d.distill.real_guidance = 3.5;
  d.distill.lr = 2e-5;
  d.distill.fake_lr = 1e-5;
  d.distill.seed = 7;
  d.distill.batch = 2;
  d.distill.trajectories = 16;
  d.distill.trajectory_steps = 10;
  d.distill.checkpoint_every = 25;
  d.distill.real = "default";
  ASSERT_TRUE(ValidateJobSpec(d).ok());
  auto back = SpecFromJson(SpecToJson(d));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->kind, JobKind::kDistill);
  EXPECT_EQ(SpecToJson(*back), SpecToJson(d));
  EXPECT_EQ(back->distill.timesteps, d.distill.timesteps);
  EXPECT_EQ(back->distill.real, "default");
  EXPECT_STREQ(JobKindName(back->kind), "distill");

  JobSpec s = d;
  s.distill.timesteps = {500, 750};
  ExpectRefused(s, "strictly decreasing integers in [1, 1000]");
  s = d;
  s.distill.fake_updates = 101;
  ExpectRefused(s, "distill.fake_updates=101: allowed 0 (default) .. 100");
  s = d;
  s.distill.real_guidance = 30;
  ExpectRefused(s, "distill.real_guidance=30");
  s = d;
  s.distill.steps = -1;
  ExpectRefused(s, "distill.steps=-1: must be >= 0");
  s = d;
  s.distill.fake_lr = 2;
  ExpectRefused(s, "distill.fake_lr=2");
  EXPECT_EQ(SpecFromJson({{"base", "x"}, {"kind", "prune"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A NaN passes every `v < lo || v > hi` check; before, a NaN gate threshold switched the gate
// off (every comparison with it is false) and reached job.json as null, so the job was skipped
// when the server restarted; a NaN rate reached the tools as "nan".
TEST(JobSpecTest, NotANumberIsRefusedEverywhere) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  JobSpec s = Good();
  s.convert.lr = nan;
  ExpectRefused(s, "convert.lr=nan");
  s = Good();
  s.gate.prompts = "seen";
  s.gate.max_drop["adherence"] = nan;
  ExpectRefused(s, "gate.max_drop[adherence]=nan: allowed -1..1");
  s.gate.max_drop["adherence"] = 0.05;
  s.gate.min_psnr = nan;
  ExpectRefused(s, "gate.min_psnr=nan: allowed 0");
  s.gate.min_psnr = inf;
  ExpectRefused(s, "gate.min_psnr=inf");
  s.gate.min_psnr = 30;
  EXPECT_TRUE(ValidateJobSpec(s).ok());
  s = Good();
  s.gate.min_psnr = nan;  // without prompts: refused too, not read as "not checked"
  ExpectRefused(s, "set gate.prompts");
  JobSpec d;
  d.base = "default-linvideo";
  d.kind = JobKind::kDistill;
  for (double DistillJobOptions::*field :
       {&DistillJobOptions::lr, &DistillJobOptions::fake_lr, &DistillJobOptions::real_guidance}) {
    JobSpec bad = d;
    bad.distill.*field = nan;
    ExpectRefused(bad, "=nan");
  }
}

TEST(JobSpecTest, StateNamesAndTerminalStates) {
  EXPECT_STREQ(JobStateName(JobState::kGateFailed), "gate_failed");
  EXPECT_FALSE(IsTerminal(JobState::kValidating));
  EXPECT_TRUE(IsTerminal(JobState::kCancelled));
}

TEST(JobSpecTest, CpuLists) {
  EXPECT_EQ(*ParseCpuList("1"), (std::vector<int>{1}));
  EXPECT_EQ(*ParseCpuList("0-2,5,1"), (std::vector<int>{0, 1, 2, 5}));
  EXPECT_FALSE(ParseCpuList("3-1").ok());
  EXPECT_FALSE(ParseCpuList("a").ok());
  EXPECT_FALSE(ParseCpuList("").ok());
}

}  // namespace
}  // namespace linvideo::server

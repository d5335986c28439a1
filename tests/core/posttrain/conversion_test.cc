// The LinVideo conversion stage through its real interfaces: the trajectory cache (resume gives
// byte-identical shards; other settings are refused), selective transfer on a tiny random model
// (ends with exactly K gates at ~0), export -> load -> generate (kinds and lineage kept), fixed and
// heuristic selections, and the option errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/io/json_file.h"
#include "core/io/safetensors.h"
#include "core/io/state_dict.h"
#include "core/models/wan/dit_key_map.h"
#include "core/models/wan/wan_config.h"
#include "core/pipeline/model_folder.h"
#include "core/pipeline/text_to_video.h"
#include "core/posttrain/convert.h"
#include "core/posttrain/trajectory_cache.h"

namespace linvideo::core::posttrain {
namespace {

namespace fs = std::filesystem;

std::string ReadBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class ConversionTest : public ::testing::Test {
 protected:
  // A random tiny model with 4 DiT layers (the named tiny config has 2), and its trajectories.
  static void SetUpTestSuite() {
    root_ = new fs::path(fs::temp_directory_path() /
                         ("lv_conversion_test_" + std::to_string(getpid())));
    pipeline::RandomModelOptions options;
    options.seed = 7;
    options.tokenizer_model_file =
        std::string(LINVIDEO_SOURCE_DIR) + "/models/tokenizer/spiece.model";
    ASSERT_TRUE(pipeline::WriteRandomModelFolder(Model(), options).ok());
    wan::WanConfig c = *wan::NamedDitConfig("tiny");
    c.SetNumLayers(4);
    torch::manual_seed(11);
    wan::WanModel dit = *wan::CreateWanModel(c);
    {
      // Wan initialises the output head (and modulation) at zero, so a fresh model predicts no
      // velocity at all and no layer's attention matters: give every zero tensor random values.
      torch::NoGradGuard no_grad;
      for (auto& p : dit->parameters()) {
        if (p.abs().max().item<float>() == 0.0f) p.normal_(0.0, 0.1);
      }
      // Layers 2 and 3's self-attention outputs are switched off, so linearising them costs
      // nothing; layer 1's attention is sharpened (q, k scaled), so linearising it costs most.
      // Selective transfer must then turn exactly layers 2 and 3 linear.
      for (auto& item : dit->named_parameters()) {
        const std::string& name = item.key();
        if (name.rfind("blocks.2.self_attn.o.", 0) == 0 ||
            name.rfind("blocks.3.self_attn.o.", 0) == 0) {
          item.value().zero_();
        }
        if (name.rfind("blocks.1.self_attn.q.", 0) == 0 ||
            name.rfind("blocks.1.self_attn.k.", 0) == 0) {
          item.value().mul_(4.0);
        }
        if (name.rfind("blocks.1.self_attn.o.", 0) == 0) item.value().mul_(50.0);
      }
    }
    const fs::path transformer = fs::path(Model()) / "transformer";
    for (const auto& e : fs::directory_iterator(transformer)) fs::remove(e.path());
    ASSERT_TRUE(io::WriteWeights(transformer.string(), "diffusion_pytorch_model",
                                 *wan::DitToDiffusersNames(io::StateDict(*dit)))
                    .ok());
    ASSERT_TRUE(io::WriteJsonFile((transformer / "config.json").string(),
                                  c.ToJson(wan::DitConfigFormat::kDiffusers))
                    .ok());
    auto built = BuildTrajectoryCache(CacheOptions(Cache()));
    ASSERT_TRUE(built.ok()) << built.status();
    ASSERT_TRUE(built->complete);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*root_);
    delete root_;
  }
  static std::string Model() { return (*root_ / "model").string(); }
  static std::string Cache() { return (*root_ / "cache").string(); }
  static TrajectoryCacheOptions CacheOptions(const std::string& out) {
    TrajectoryCacheOptions o;
    o.model_dir = Model();
    o.out_dir = out;
    o.videos = 5;
    o.batch = 2;
    o.shard_videos = 2;  // shards of 2, 2, 1 videos
    o.seed = 3;
    o.generation.width = 32;
    o.generation.height = 32;
    o.generation.frames = 5;
    o.generation.steps = 4;
    return o;
  }
  static ConvertOptions Convert(const std::string& name) {
    ConvertOptions o;
    o.base_dir = Model();
    o.cache_dir = Cache();
    o.work_dir = (*root_ / (name + "_work")).string();
    o.out_dir = (*root_ / (name + "_out")).string();
    o.linear_layers = 2;
    o.steps = 4;
    o.batch = 2;
    o.log_every = 100;
    return o;
  }
  static fs::path* root_;
};
fs::path* ConversionTest::root_ = nullptr;

TEST_F(ConversionTest, CacheHoldsTheTeachersTrajectories) {
  auto cache = TrajectoryCache::Open(Cache());
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_EQ((*cache)->videos(), 5);
  EXPECT_EQ((*cache)->steps(), 4);
  EXPECT_TRUE((*cache)->guided());
  ASSERT_EQ((*cache)->sigmas().size(), 5u);
  EXPECT_EQ((*cache)->sigmas().back(), 0.0);
  TrajectoryCache::Point p = (*cache)->Get(4, 0);
  EXPECT_EQ(p.x.sizes(), c10::IntArrayRef({16, 2, 4, 4}));
  EXPECT_EQ(p.u_cond.sizes(), p.x.sizes());
  EXPECT_EQ(p.u_uncond.sizes(), p.x.sizes());
  EXPECT_EQ(p.context.sizes(), c10::IntArrayRef({32, 64}));
  // The prompt branch differs from the negative one (guidance has something to combine).
  EXPECT_GT((p.u_cond - p.u_uncond).abs().max().item<float>(), 0.0f);
  // Step 0's x is the seeded noise; consecutive points differ.
  EXPECT_GT((cache.value()->Get(4, 1).x - p.x).abs().max().item<float>(), 0.0f);
  EXPECT_EQ((*cache)->prompts().size(), 5u);
}

TEST_F(ConversionTest, ResumedCacheIsByteIdentical) {
  const std::string dir = (*root_ / "cache_resumed").string();
  TrajectoryCacheOptions o = CacheOptions(dir);
  o.stop_after_shards = 1;
  auto first = BuildTrajectoryCache(o);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->complete);
  EXPECT_EQ(first->shards_written, 1);
  EXPECT_EQ(TrajectoryCache::Open(dir).status().code(), absl::StatusCode::kFailedPrecondition);
  o.stop_after_shards = 0;
  auto rest = BuildTrajectoryCache(o);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_TRUE(rest->complete);
  EXPECT_EQ(rest->shards_written, 2);
  for (const char* f : {"shard-00000.safetensors", "shard-00001.safetensors",
                        "shard-00002.safetensors", "negative.safetensors", "manifest.json"}) {
    EXPECT_EQ(ReadBytes(fs::path(dir) / f), ReadBytes(fs::path(Cache()) / f)) << f;
  }
  // Other settings in the same directory are refused, not mixed in.
  o.seed = 4;
  auto other = BuildTrajectoryCache(o);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(other.status().message().find("other settings"), std::string::npos);
}

TEST_F(ConversionTest, SelectiveTransferEndsWithExactlyKLinearLayers) {
  ConvertOptions o = Convert("auto");
  o.steps = 60;
  o.gate_lr = 5.0;  // a short run: the gates must cross [0, 1] within the 30 annealing steps
  auto s = RunConversion(o);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->r.size(), 3u);  // layers 1..3 (0 pinned)
  int near_zero = 0, near_one = 0;
  for (double r : s->r) {
    near_zero += r < 0.05;
    near_one += r > 0.95;
  }
  EXPECT_EQ(near_zero, 2) << s->r[0] << " " << s->r[1] << " " << s->r[2] << " gap "
                          << s->final_objective;
  EXPECT_EQ(near_one, 1);
  EXPECT_TRUE(s->rounding_agreed);
  EXPECT_EQ(s->linear, (std::vector<int64_t>{2, 3}));
  // The exported student trained its last quarter with the gates frozen at exactly 0 / 1.
  auto index = io::ReadJsonFile((fs::path(o.out_dir) / "model_index.json").string());
  ASSERT_TRUE(index.ok());
  EXPECT_EQ((*index)["linvideo_conversion"]["linear"], nlohmann::json({2, 3}));
}

TEST_F(ConversionTest, ExportLoadsAndGeneratesWithKindsAndLineage) {
  ConvertOptions o = Convert("export");
  o.select = *ParseLayerChoice("layers:1,3");
  auto s = RunConversion(o);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(s->finished);
  auto folder = pipeline::ResolveModelFolder(o.out_dir);
  ASSERT_TRUE(folder.ok()) << folder.status();
  auto config = pipeline::ReadDitConfig(*folder->transformer);
  ASSERT_TRUE(config.ok()) << config.status();
  using attention::AttentionKind;
  EXPECT_EQ(config->attention_kinds,
            (std::vector<AttentionKind>{AttentionKind::kSoftmax, AttentionKind::kLinear,
                                        AttentionKind::kSoftmax, AttentionKind::kLinear}));
  auto index = io::ReadJsonFile((fs::path(o.out_dir) / "model_index.json").string());
  ASSERT_TRUE(index.ok());
  const nlohmann::json& lineage = (*index)["linvideo_conversion"];
  EXPECT_EQ(lineage["selection"], "layers:1,3");
  EXPECT_EQ(lineage["objective"], "adm");
  EXPECT_EQ(lineage["linear_layers"], 2);
  EXPECT_EQ(lineage["steps"], 4);
  EXPECT_EQ(lineage["base_weights_sha256"], *TransformerWeightsSha256(Model()));
  EXPECT_TRUE(lineage["final_losses"].contains("objective"));
  EXPECT_GT(lineage["train_seconds"].get<double>(), 0.0);
  EXPECT_EQ(lineage["rollbacks"], 0);
  EXPECT_EQ(lineage["adm_weighting"], "uniform");
  EXPECT_EQ(lineage["adm_anchor"], 0.05);  // the default: anchored ADM
  EXPECT_EQ((*index)["linvideo"], (*io::ReadJsonFile(Model() + "/model_index.json"))["linvideo"]);
  // The exported folder serves: the pipeline loads it and generates a video.
  auto pipe = pipeline::TextToVideoPipeline::Create({o.out_dir});
  ASSERT_TRUE(pipe.ok()) << pipe.status();
  params::GenerationParams p;
  p.prompt = "a small red circle moves to the left on a white background";
  p.width = 32;
  p.height = 32;
  p.frames = 5;
  p.steps = 2;
  auto videos = (*pipe)->Generate({p});
  ASSERT_TRUE(videos.ok()) << videos.status();
  EXPECT_EQ((*videos)[0].sizes(), c10::IntArrayRef({5, 32, 32, 3}));
}

TEST_F(ConversionTest, ResumeContinuesToTheSameWeights) {
  ConvertOptions whole = Convert("whole");
  whole.objective = Objective::kMse;
  whole.checkpoint_every = 2;
  ASSERT_TRUE(RunConversion(whole).ok());
  ConvertOptions split = Convert("split");
  split.objective = Objective::kMse;
  split.checkpoint_every = 2;
  split.stop_after = 2;
  auto first = RunConversion(split);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->finished);
  split.stop_after = 0;
  auto rest = RunConversion(split);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_TRUE(rest->finished);
  auto a = io::ReadWeights(whole.out_dir + "/transformer", "");
  auto b = io::ReadWeights(split.out_dir + "/transformer", "");
  ASSERT_TRUE(a.ok() && b.ok());
  for (const auto& [name, t] : *a) EXPECT_TRUE(torch::equal(t, b->at(name))) << name;
}

TEST_F(ConversionTest, KilledWhileCheckpointingResumesFromThePreviousCheckpoint) {
  ConvertOptions whole = Convert("whole_ref");
  whole.objective = Objective::kMse;
  whole.checkpoint_every = 2;
  ASSERT_TRUE(RunConversion(whole).ok());
  ConvertOptions split = Convert("split_prev");
  split.objective = Objective::kMse;
  split.checkpoint_every = 2;
  split.stop_after = 2;  // checkpoints at step 2, then again on stopping: ckpt and prev.ckpt
  ASSERT_TRUE(RunConversion(split).ok());
  ASSERT_TRUE(fs::exists(split.work_dir + "/convert.prev.ckpt"));
  // Killed after the last checkpoint was renamed aside, before the new one was written.
  fs::remove(split.work_dir + "/convert.ckpt");
  split.stop_after = 0;
  auto rest = RunConversion(split);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_TRUE(rest->finished);
  std::ifstream log(split.work_dir + "/convert.log");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("resumed at step 2"), std::string::npos) << text;  // not from scratch
  auto a = io::ReadWeights(whole.out_dir + "/transformer", "");
  auto b = io::ReadWeights(split.out_dir + "/transformer", "");
  ASSERT_TRUE(a.ok() && b.ok());
  for (const auto& [name, t] : *a) EXPECT_TRUE(torch::equal(t, b->at(name))) << name;
}

TEST_F(ConversionTest, AdmAnchorEntersTheGradientAndTheLineage) {
  ConvertOptions pure = Convert("pure_adm");
  pure.select = *ParseLayerChoice("layers:1,3");
  pure.steps = 2;
  pure.adm_anchor = 0;
  ASSERT_TRUE(RunConversion(pure).ok());
  ConvertOptions anchored = pure;
  anchored.work_dir = (*root_ / "anchored_work").string();
  anchored.out_dir = (*root_ / "anchored_out").string();
  anchored.adm_anchor = 10;
  ASSERT_TRUE(RunConversion(anchored).ok());
  auto index = io::ReadJsonFile(anchored.out_dir + "/model_index.json");
  ASSERT_TRUE(index.ok());
  EXPECT_EQ((*index)["linvideo_conversion"]["adm_anchor"], 10.0);
  auto pure_index = io::ReadJsonFile(pure.out_dir + "/model_index.json");
  ASSERT_TRUE(pure_index.ok());
  EXPECT_EQ((*pure_index)["linvideo_conversion"]["adm_anchor"], 0.0);
  // Same seed, same draws: only the anchor term differs, and it moves the weights.
  auto a = io::ReadWeights(pure.out_dir + "/transformer", "");
  auto b = io::ReadWeights(anchored.out_dir + "/transformer", "");
  ASSERT_TRUE(a.ok() && b.ok());
  int64_t differing = 0;
  for (const auto& [name, t] : *a) differing += !torch::equal(t, b->at(name));
  EXPECT_GT(differing, 0);
}

TEST_F(ConversionTest, HeuristicPicksTheLayersLinearisationHurtsLeast) {
  ConvertOptions o = Convert("heuristic");
  o.select = *ParseLayerChoice("heuristic");
  o.steps = 1;
  auto s = RunConversion(o);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->heuristic_scores.size(), 3u);  // layers 1..3
  std::vector<int64_t> expected = {1, 2, 3};
  std::sort(expected.begin(), expected.end(), [&](int64_t a, int64_t b) {
    return s->heuristic_scores[a - 1] < s->heuristic_scores[b - 1];
  });
  expected.resize(2);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(s->linear, expected);
}

TEST(DivergenceGuardTest, StopsARunAwayGapNotANoisyOne) {
  DivergenceGuard guard(10.0, 3);
  // Noisy but stable: a single spike within the window does not trip it.
  for (double g : {0.05, 0.08, 0.04, 0.06, 0.3, 0.05, 0.07}) EXPECT_FALSE(guard.Add(g)) << g;
  EXPECT_NEAR(guard.best_mean(), 0.17 / 3, 1e-9);  // the first window, (0.05 + 0.08 + 0.04) / 3
  // The 0.05 -> 12 run-away of the 800-step run: trips once a window mean passes 10 x 0.0567.
  EXPECT_FALSE(guard.Add(0.5));
  EXPECT_TRUE(guard.Add(3.3));
  // A step up that stays (a gate reaching 0): compared with recent means only, so a rise of 10x
  // that settles does not trip a factor of 30, and the old level is forgotten after 2 windows.
  DivergenceGuard step_guard(30.0, 3);
  for (int i = 0; i < 6; ++i) EXPECT_FALSE(step_guard.Add(0.004));
  for (int i = 0; i < 12; ++i) EXPECT_FALSE(step_guard.Add(0.04)) << i;
  EXPECT_NEAR(step_guard.best_mean(), 0.04, 1e-9);
  EXPECT_TRUE(step_guard.Add(10.0));
  DivergenceGuard nan_guard(0.0);
  EXPECT_FALSE(nan_guard.Add(1e6));  // factor 0: only non-finite values stop a run
  EXPECT_TRUE(nan_guard.Add(std::nan("")));
}

TEST_F(ConversionTest, ADivergenceRollsBackWithHalvedRatesThenStops) {
  // 4 sound steps (checkpoints at 2 and 4), then the same run resumed with absurd rates: the first
  // update blows the weights up, the next gap is not finite, the run rolls back to a checkpoint
  // with the rates halved, blows up again and, after max_rollbacks, stops without exporting.
  ConvertOptions o = Convert("diverge");
  o.select = *ParseLayerChoice("layers:1,3");
  o.steps = 12;
  o.checkpoint_every = 2;
  o.stop_after = 4;
  auto first = RunConversion(o);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_FALSE(first->finished);
  o.stop_after = 0;
  o.lr = 1e30;
  o.feature_map_lr = 1e30;
  o.max_rollbacks = 1;
  // Other rates than the checkpoint's: refused unless allowed (core/train/run_options.h).
  auto refused = RunConversion(o);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_NE(refused.status().message().find("checkpointed at step 4 with --feature-map-lr"),
            std::string::npos)
      << refused.status();
  o.allow_option_changes = true;
  auto s = RunConversion(o);
  ASSERT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_NE(s.status().message().find("after 1 rollback(s)"), std::string::npos) << s.status();
  EXPECT_FALSE(fs::exists(o.out_dir));
  auto record = io::ReadJsonFile((fs::path(o.work_dir) / "run.json").string());
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ((*record)["rollbacks"].get<int64_t>(), 1);
  EXPECT_EQ((*record)["lr_backoff"].get<double>(), 0.5);
  EXPECT_GT((*record)["train_seconds"].get<double>(), 0.0);
  ASSERT_EQ((*record)["option_changes"].size(), 1u) << record->dump();
  EXPECT_EQ((*record)["option_changes"][0]["step"], 4);
  EXPECT_EQ((*record)["option_changes"][0]["changed"]["lr"]["to"], 1e30);
  EXPECT_EQ((*record)["options"]["lr"], 1e30);
  const std::string log = ReadBytes(fs::path(o.work_dir) / "convert.log");
  EXPECT_NE(log.find("resumed at step 4 with changed options (allowed)"), std::string::npos) << log;
  EXPECT_NE(log.find("rolled back to step 4 with the learning rates x0.5"), std::string::npos)
      << log;
}

TEST(LearningRateScaleTest, ConstantThenCosineToTheFloor) {
  // 100 steps, decay from step 75: 1 before, 1 at 75, the floor at the last step (99).
  EXPECT_EQ(LearningRateScale(0, 100, 75, 0.1), 1.0);
  EXPECT_EQ(LearningRateScale(74, 100, 75, 0.1), 1.0);
  EXPECT_NEAR(LearningRateScale(75, 100, 75, 0.1), 1.0, 1e-12);
  EXPECT_NEAR(LearningRateScale(87, 100, 75, 0.1), 0.55, 1e-12);  // halfway: (1 + 0.1) / 2
  EXPECT_NEAR(LearningRateScale(99, 100, 75, 0.1), 0.1, 1e-12);
  EXPECT_EQ(LearningRateScale(99, 100, 100, 0.1), 1.0);  // no decay part
  EXPECT_EQ(LearningRateScale(50, 100, 0, 1.0), 1.0);    // floor 1: constant
}

TEST_F(ConversionTest, BadOptionsSayWhatIsAllowed) {
  auto message = [](const ConvertOptions& o) {
    auto s = RunConversion(o);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << s.status();
    return std::string(s.status().message());
  };
  ConvertOptions o = Convert("bad");
  o.linear_layers = 4;  // K >= layers
  EXPECT_NE(message(o).find("1..3"), std::string::npos) << message(o);
  o.linear_layers = 3;
  o.pinned = {0, 1};  // only 2 unpinned
  EXPECT_NE(message(o).find("not pinned"), std::string::npos) << message(o);
  o = Convert("bad");
  o.select = *ParseLayerChoice("layers:1,4");
  EXPECT_NE(message(o).find("[0, 4)"), std::string::npos) << message(o);
  EXPECT_NE(ParseObjective("dmd").status().message().find("adm or mse"), std::string::npos);
  EXPECT_NE(ParseAdmWeighting("sqrt").status().message().find("uniform or paper"),
            std::string::npos);
  o = Convert("bad");
  o.lr_floor = 0;
  EXPECT_NE(message(o).find("--lr-floor must be in (0, 1]"), std::string::npos) << message(o);
  o = Convert("bad");
  o.feature_map_lr = -1;
  EXPECT_NE(message(o).find("--feature-map-lr > 0"), std::string::npos) << message(o);
  EXPECT_NE(ParseLayerChoice("best").status().message().find("auto, heuristic or layers:"),
            std::string::npos);
  o = Convert("bad");
  o.adm_anchor = -1;
  EXPECT_NE(message(o).find("--adm-anchor must be in [0, 100]"), std::string::npos) << message(o);
  o = Convert("bad");
  o.cache_dir = (*root_ / "no_cache").string();
  EXPECT_EQ(RunConversion(o).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace linvideo::core::posttrain

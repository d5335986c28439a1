#include "core/posttrain/convert.h"

#include <c10/core/InferenceMode.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <numeric>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/attention/hybrid_attention.h"
#include "core/common/status.h"
#include "core/io/json_file.h"
#include "core/io/safetensors.h"
#include "core/io/state_dict.h"
#include "core/models/wan/dit_key_map.h"
#include "core/pipeline/model_folder.h"
#include "core/posttrain/objectives.h"
#include "core/posttrain/selective_transfer.h"
#include "core/posttrain/student.h"
#include "core/posttrain/trajectory_cache.h"
#include "core/train/data_parallel.h"
#include "core/train/run_options.h"
#include "core/train/train_state.h"

namespace linvideo::core::posttrain {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kPointStream = 201, kBranchStream = 202;

absl::Status Bad(const std::string& text) { return absl::InvalidArgumentError(text); }

// One training batch drawn from the cache.
struct Batch {
  torch::Tensor x;              // [B, C, F', h, w] x_{t_i}
  torch::Tensor u_branch;       // teacher velocity on the drawn branch at x_{t_i}
  torch::Tensor u_guided;       // teacher's guided velocity at x_{t_i} (= u_branch unguided)
  torch::Tensor context;        // [B, text_len, text_dim] the branch's text
  torch::Tensor t_now, t_next;  // [B] integer timesteps the model sees (as float)
  torch::Tensor sigma_now, sigma_next;  // [B]
  torch::Tensor adm_weight;             // [B] AdmTimeWeights of the drawn steps (ADM only)
};

// The draw is the combined batch's (o.batch rows); only `rows` are built (a multi-process run's
// share, train::DataParallel), so a row's data does not depend on the world size.
Batch DrawBatch(const TrajectoryCache& cache, const ConvertOptions& o, int64_t step,
                const c10::Device& device, const train::Shard& rows,
                const std::vector<double>& adm_weights = {}) {
  at::Generator gen = train::StepGenerator(o.seed, step, kPointStream);
  at::Generator branch_gen = train::StepGenerator(o.seed, step, kBranchStream);
  // ADM needs the next point to be noisy (σ_{i+1} > 0): the last step is not drawn.
  const int64_t last = o.objective == Objective::kAdm ? cache.steps() - 1 : cache.steps();
  const torch::Tensor videos = at::randint(cache.videos(), {o.batch}, gen, at::kLong);
  const torch::Tensor steps = at::randint(std::max<int64_t>(last, 1), {o.batch}, gen, at::kLong);
  const torch::Tensor coins = at::rand({o.batch}, branch_gen);
  std::vector<torch::Tensor> x, ub, ug, ctx;
  std::vector<float> tn, tx, sn, sx, aw;
  for (int64_t b = rows.begin; b < rows.begin + rows.count; ++b) {
    const int64_t v = videos[b].item<int64_t>(), i = steps[b].item<int64_t>();
    TrajectoryCache::Point p = cache.Get(v, i);
    const bool uncond = cache.guided() && coins[b].item<double>() < o.uncond_fraction;
    torch::Tensor guided =
        cache.guided() ? p.u_uncond + cache.guidance() * (p.u_cond - p.u_uncond) : p.u_cond;
    x.push_back(p.x);
    ub.push_back(uncond ? p.u_uncond : p.u_cond);
    ug.push_back(guided);
    ctx.push_back(uncond ? cache.negative_context() : p.context);
    tn.push_back(static_cast<float>(cache.timesteps()[i]));
    sn.push_back(static_cast<float>(cache.sigmas()[i]));
    const int64_t next = std::min(i + 1, cache.steps() - 1);
    tx.push_back(static_cast<float>(cache.timesteps()[next]));
    sx.push_back(static_cast<float>(cache.sigmas()[i + 1]));
    aw.push_back(static_cast<size_t>(i) < adm_weights.size()
                     ? static_cast<float>(adm_weights[static_cast<size_t>(i)])
                     : 1.0f);
  }
  Batch batch;
  batch.x = torch::stack(x).to(device);
  batch.u_branch = torch::stack(ub).to(device);
  batch.u_guided = torch::stack(ug).to(device);
  batch.context = torch::stack(ctx).to(device);
  batch.t_now = torch::tensor(tn).to(device);
  batch.t_next = torch::tensor(tx).to(device);
  batch.sigma_now = torch::tensor(sn).to(device);
  batch.sigma_next = torch::tensor(sx).to(device);
  batch.adm_weight = torch::tensor(aw).to(device);
  return batch;
}

// Heuristic selection: each unpinned layer alone turned linear (identity feature map), the mean
// squared change of the guided-branch velocity against the teacher's on cached points.
absl::StatusOr<std::vector<double>> HeuristicScores(wan::WanModel& teacher,
                                                    const TrajectoryCache& cache,
                                                    const ConvertOptions& o,
                                                    const std::vector<int64_t>& candidates) {
  ConvertOptions probe = o;
  probe.batch = o.heuristic_points;
  probe.objective = Objective::kMse;  // any step, including the last
  probe.uncond_fraction = 0;
  const Batch batch =
      DrawBatch(cache, probe, /*step=*/-1, teacher->device(), train::Shard{0, probe.batch});
  std::vector<double> scores;
  c10::InferenceMode guard;
  const torch::Tensor reference = Velocity(teacher, batch.x, batch.t_now, batch.context, o.bf16);
  for (int64_t l : candidates) {
    LV_ASSIGN_OR_RETURN(wan::WanModel probe_model, MakeLinearStudent(teacher, {l}));
    probe_model->eval();
    const torch::Tensor v = Velocity(probe_model, batch.x, batch.t_now, batch.context, o.bf16);
    scores.push_back((v - reference).pow(2).mean().item<double>());
  }
  return scores;
}

// The exported transformer: chosen layers linear, the rest softmax, the student's weights (gates
// dropped; attention-core tensors of layers that end softmax dropped).
absl::StatusOr<wan::WanModel> FinalModel(wan::WanModel& student,
                                         const std::vector<int64_t>& linear) {
  wan::WanConfig config = student->config();
  for (auto& kind : config.attention_kinds) kind = attention::AttentionKind::kSoftmax;
  for (int64_t l : linear) config.attention_kinds[l] = attention::AttentionKind::kLinear;
  LV_ASSIGN_OR_RETURN(wan::WanModel model, wan::CreateWanModel(config));
  io::TensorMap kept;
  for (auto& [name, tensor] : io::StateDict(*student)) {
    if (name.find(".self_attn.attn_core.") != std::string::npos) {
      const int64_t layer = wan::DitBlockIndex(name);
      const bool linear_layer = std::count(linear.begin(), linear.end(), layer) > 0;
      if (!linear_layer || absl::EndsWith(name, ".r")) continue;
    }
    kept[name] = tensor.detach().to(torch::kCPU, torch::kFloat);
  }
  LV_RETURN_IF_ERROR(io::LoadStateDict(*model, kept));
  model->SetFusedGelu(student->fused_gelu());
  return model;
}

absl::Status Export(const ConvertOptions& o, wan::WanModel& student, const ConvertSummary& s,
                    const TrajectoryCache& cache, const nlohmann::json& option_changes) {
  LV_ASSIGN_OR_RETURN(pipeline::ModelFolder base, pipeline::ResolveModelFolder(o.base_dir));
  LV_ASSIGN_OR_RETURN(wan::WanModel model, FinalModel(student, s.linear));
  const pipeline::WeightsRewrite rewrite =
      pipeline::RewriteOf(*base.transformer, base.root, "diffusion_pytorch_model");
  // Written to a sibling temporary folder and renamed, so a crash never leaves half a model.
  const fs::path out = fs::absolute(o.out_dir);
  const fs::path tmp = out.string() + ".partial";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  LV_RETURN_IF_ERROR(pipeline::CopyModelFolder(base.root, tmp.string(), {rewrite}));
  io::TensorMap weights = io::StateDict(*model);
  if (base.diffusers) {
    LV_ASSIGN_OR_RETURN(weights, wan::DitToDiffusersNames(weights));
  }
  LV_RETURN_IF_ERROR(io::WriteWeights((tmp / rewrite.dir).string(), rewrite.OutputStem(), weights));
  const std::string config_file =
      base.transformer->config_file.empty()
          ? (tmp / rewrite.dir / "config.json").string()
          : (tmp / fs::relative(base.transformer->config_file, base.root)).string();
  LV_RETURN_IF_ERROR(io::WriteJsonFile(
      config_file, model->config().ToJson(base.diffusers ? wan::DitConfigFormat::kDiffusers
                                                         : wan::DitConfigFormat::kOriginal)));
  // Lineage, beside the serving defaults the base's model_index.json carries over.
  const fs::path index = tmp / "model_index.json";
  nlohmann::json model_index = nlohmann::json::object();
  if (fs::exists(index)) {
    LV_ASSIGN_OR_RETURN(model_index, io::ReadJsonFile(index.string()));
  }
  LV_ASSIGN_OR_RETURN(std::string base_sha, TransformerWeightsSha256(o.base_dir));
  nlohmann::json r = nlohmann::json::object();
  for (size_t i = 0; i < s.gate_layers.size() && i < s.r.size(); ++i) {
    r[std::to_string(s.gate_layers[i])] = s.r[i];
  }
  nlohmann::json lineage = {{"method", "linvideo-selective-transfer"},
                            {"base_model", fs::absolute(base.root).lexically_normal().string()},
                            {"base_weights_sha256", base_sha},
                            {"linear_layers", o.linear_layers},
                            {"linear", s.linear},
                            {"selection", LayerChoiceName(o.select)},
                            {"pinned", o.pinned},
                            {"objective", ObjectiveName(o.objective)},
                            {"steps", s.steps},
                            {"batch", o.batch},
                            {"lr", o.lr},
                            {"feature_map_lr", o.feature_map_lr},
                            {"lr_floor", o.lr_floor},
                            {"adm_weighting", AdmWeightingName(o.adm_weighting)},
                            {"adm_anchor", o.objective == Objective::kAdm ? o.adm_anchor : 0.0},
                            {"gate_lr", o.gate_lr},
                            {"lambda", o.lambda},
                            {"r_init", o.r_init},
                            {"seed", o.seed},
                            {"r_before_rounding", r},
                            {"rounding_agreed", s.rounding_agreed},
                            {"final_losses",
                             {{"objective", s.final_objective},
                              {"constraint", s.final_constraint},
                              {"regularizer", s.final_regularizer}}},
                            {"trajectories",
                             {{"videos", cache.videos()},
                              {"steps", cache.steps()},
                              {"guidance", cache.guidance()},
                              {"manifest_sha256", cache.manifest_sha256()}}}};
  lineage["train_seconds"] = s.train_seconds;
  lineage["rollbacks"] = s.rollbacks;
  lineage["lr_backoff"] = s.lr_backoff;
  if (!s.heuristic_scores.empty()) lineage["heuristic_scores"] = s.heuristic_scores;
  // A resume that changed options (--allow-option-changes): which, from what, at which step.
  if (option_changes.is_array() && !option_changes.empty()) {
    lineage["option_changes"] = option_changes;
  }
  model_index["linvideo_conversion"] = lineage;
  LV_RETURN_IF_ERROR(io::WriteJsonFile(index.string(), model_index));
  fs::rename(tmp, out, ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("moving ", tmp.string(), " to ", out.string(), ": ", ec.message()));
  return absl::OkStatus();
}

// The gates' values before rounding and the chosen layers, kept in work_dir/gates.json from the
// moment the gates are frozen, so a resumed run reports and exports the same choice.
absl::Status SaveBinarization(const std::string& path, const std::vector<double>& r,
                              const Binarization& bin) {
  return io::WriteJsonFile(
      path,
      {{"r_before_rounding", r}, {"linear", bin.linear}, {"rounding_agreed", bin.rounding_agreed}});
}

absl::Status LoadBinarization(const std::string& path, std::vector<double>* r, Binarization* bin) {
  LV_ASSIGN_OR_RETURN(nlohmann::json j, io::ReadJsonFile(path));
  *r = j.at("r_before_rounding").get<std::vector<double>>();
  bin->linear = j.at("linear").get<std::vector<int64_t>>();
  bin->rounding_agreed = j.at("rounding_agreed").get<bool>();
  return absl::OkStatus();
}

// What a run carries across resumes besides the checkpoint: its wall time so far, how often it
// rolled back from a divergence and the learning-rate factor that left, and the options it was
// made with and any allowed change of them (work_dir/run.json; core/train/run_options.h).
struct RunRecord {
  double seconds = 0;
  int64_t rollbacks = 0;
  double lr_backoff = 1.0;
  nlohmann::json options = nlohmann::json::object();
  nlohmann::json option_changes = nlohmann::json::array();
};

absl::Status SaveRunRecord(const std::string& path, const RunRecord& r) {
  return io::WriteJsonFile(path, {{"train_seconds", r.seconds},
                                  {"rollbacks", r.rollbacks},
                                  {"lr_backoff", r.lr_backoff},
                                  {"options", r.options},
                                  {"option_changes", r.option_changes}});
}

RunRecord RunRecordOf(const nlohmann::json& j) {
  RunRecord r;
  r.seconds = j.value("train_seconds", 0.0);
  r.rollbacks = j.value("rollbacks", int64_t{0});
  r.lr_backoff = j.value("lr_backoff", 1.0);
  return r;
}

// What defines the run, keyed by flag (core/train/run_options.h): checked on every resume. The
// step count is part of it: the anneal, the binarisation and the lr decay are fractions of it.
nlohmann::json RunOptions(const ConvertOptions& o, const std::string& base_sha,
                          const TrajectoryCache& cache) {
  return {{"base", absl::StrCat("transformer sha256 ", base_sha)},
          {"cache", absl::StrCat("manifest sha256 ", cache.manifest_sha256())},
          {"linear-layers", o.linear_layers},
          {"select", LayerChoiceName(o.select)},
          {"pinned", o.pinned},
          {"objective", ObjectiveName(o.objective)},
          {"steps", o.steps},
          {"batch", o.batch},
          {"lr", o.lr},
          {"gate-lr", o.gate_lr},
          {"feature-map-lr", o.feature_map_lr},
          {"lr-floor", o.lr_floor},
          {"adm-weighting", AdmWeightingName(o.adm_weighting)},
          {"adm-anchor", o.adm_anchor},
          {"lambda", o.lambda},
          {"r-init", o.r_init},
          {"uncond-fraction", o.uncond_fraction},
          {"heuristic-points", o.heuristic_points},
          {"anneal-fraction", o.anneal_fraction},
          {"finetune-fraction", o.finetune_fraction},
          {"trainable", o.attention_only ? "attention" : "all"},
          {"seed", o.seed},
          {"precision", o.bf16 ? "bf16" : "fp32"}};
}

// Sets every gate to exactly 1 (softmax) or 0 (the chosen linear layers) and stops training them.
void FreezeGates(std::vector<torch::Tensor>& gates, const std::vector<int64_t>& gate_layers,
                 const std::vector<int64_t>& linear) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < gates.size(); ++i) {
    const bool lin = std::count(linear.begin(), linear.end(), gate_layers[i]) > 0;
    gates[i].fill_(lin ? 0.0 : 1.0);
    gates[i].set_requires_grad(false);
    gates[i].mutable_grad() = torch::Tensor();
  }
}

bool SameTensor(const torch::Tensor& a, const torch::Tensor& b) {
  return a.unsafeGetTensorImpl() == b.unsafeGetTensorImpl();
}

}  // namespace

absl::StatusOr<ConvertSummary> RunConversion(const ConvertOptions& o) {
  if (o.base_dir.empty()) return Bad("conversion needs --base (the teacher model folder)");
  LV_ASSIGN_OR_RETURN(pipeline::ModelFolder base, pipeline::ResolveModelFolder(o.base_dir));
  if (!base.transformer) {
    return absl::NotFoundError(absl::StrCat(o.base_dir, " has no transformer component"));
  }
  LV_ASSIGN_OR_RETURN(wan::WanConfig base_config, pipeline::ReadDitConfig(*base.transformer));
  const int64_t num_layers = base_config.num_layers;
  LV_RETURN_IF_ERROR(ValidateConvertOptions(o, num_layers));
  for (auto kind : base_config.attention_kinds) {
    if (kind != attention::AttentionKind::kSoftmax) {
      return absl::FailedPreconditionError(absl::StrCat(
          o.base_dir, " already has non-softmax attention layers; convert a softmax teacher"));
    }
  }
  if (!o.out_dir.empty() && fs::exists(o.out_dir)) {
    return absl::AlreadyExistsError(
        absl::StrCat("--out ", o.out_dir,
                     " already exists; the export never overwrites a folder: remove it or "
                     "choose another"));
  }
  LV_ASSIGN_OR_RETURN(auto cache, TrajectoryCache::Open(o.cache_dir));
  LV_ASSIGN_OR_RETURN(std::string base_sha, TransformerWeightsSha256(o.base_dir));
  if (cache->base_weights_sha256() != base_sha) {
    return absl::FailedPreconditionError(
        absl::StrCat("the trajectory cache ", o.cache_dir, " was made from other weights (",
                     cache->base_model(), ", sha256 ", cache->base_weights_sha256(),
                     ") than --base ", o.base_dir, " (", base_sha, ")"));
  }
  if (o.objective == Objective::kAdm && cache->steps() < 2) {
    return Bad("ADM needs trajectories of at least 2 steps");
  }
  std::error_code ec;
  fs::create_directories(o.work_dir, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot create ", o.work_dir, ": ", ec.message()));

  const c10::Device device = o.device.device;
  LV_ASSIGN_OR_RETURN(wan::WanModel teacher,
                      pipeline::LoadDit(*base.transformer, DeviceOptions{device, at::kFloat}));
  for (auto& p : teacher->parameters()) p.set_requires_grad(false);

  ConvertSummary summary;
  const SelectionOptions sel{num_layers, o.linear_layers, o.pinned};
  std::vector<int64_t> fixed;  // heuristic / listed layers
  if (o.select.mode == SelectMode::kLayers) fixed = o.select.layers;
  if (o.select.mode == SelectMode::kHeuristic) {
    const std::vector<int64_t> candidates = HybridLayers(sel);
    LV_ASSIGN_OR_RETURN(summary.heuristic_scores, HeuristicScores(teacher, *cache, o, candidates));
    std::vector<size_t> order(candidates.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return summary.heuristic_scores[a] < summary.heuristic_scores[b];
    });
    for (int64_t k = 0; k < o.linear_layers; ++k) fixed.push_back(candidates[order[k]]);
    std::sort(fixed.begin(), fixed.end());
  }
  const bool gated = o.select.mode == SelectMode::kAuto;
  wan::WanModel student{nullptr};
  if (gated) {
    LV_ASSIGN_OR_RETURN(student, MakeHybridStudent(teacher, sel, o.r_init));
  } else {
    LV_ASSIGN_OR_RETURN(student, MakeLinearStudent(teacher, fixed));
  }
  student->train();
  std::vector<torch::Tensor> gates;
  if (gated) {
    LV_ASSIGN_OR_RETURN(gates, HybridGates(student, sel));
    summary.gate_layers = HybridLayers(sel);
  }
  std::vector<torch::Tensor> weights, dit_weights, feature_maps;
  for (auto& item : student->named_parameters()) {
    torch::Tensor& p = item.value();
    if (std::any_of(gates.begin(), gates.end(),
                    [&](const torch::Tensor& g) { return SameTensor(g, p); })) {
      continue;
    }
    if (o.attention_only && item.key().find(".self_attn.") == std::string::npos) {
      p.set_requires_grad(false);
      continue;
    }
    weights.push_back(p);
    const bool feature_map = item.key().find("feature_map_") != std::string::npos;
    (feature_map ? feature_maps : dit_weights).push_back(p);
  }
  // The weights train with Adam; the gates with plain SGD. Adam normalises each parameter's
  // update, and the gates' gradients are dominated by the terms every gate shares (λ·∂L_con is the
  // same for all), so under Adam the gates moved in lockstep and the objective's per-layer
  // differences never separated them (measured: all r within 1e-4 of each other, hovering at 0.5).
  // SGD keeps the differences: r_l − r_m changes by gate_lr·(∂L/∂r_m − ∂L/∂r_l) per step.
  // (Plain SGD keeps no state, so the gates' step is written out below and only Adam's state goes
  // into the checkpoint; the gates themselves are module parameters.)
  // Two Adam groups: the pretrained weights (lr) and the new feature maps (feature_map_lr).
  std::vector<torch::optim::OptimizerParamGroup> groups;
  std::vector<double> group_lr;
  for (auto [params, lr] :
       {std::make_pair(&dit_weights, o.lr), std::make_pair(&feature_maps, o.feature_map_lr)}) {
    if (params->empty()) continue;
    groups.emplace_back(*params, std::make_unique<torch::optim::AdamOptions>(lr));
    group_lr.push_back(lr);
  }
  torch::optim::Adam optimizer(std::move(groups), torch::optim::AdamOptions(o.lr));
  auto set_rates = [&](double scale) {
    for (size_t g = 0; g < group_lr.size(); ++g) {
      static_cast<torch::optim::AdamOptions&>(optimizer.param_groups()[g].options())
          .lr(group_lr[g] * scale);
    }
  };
  const std::vector<double> adm_weights = AdmTimeWeights(cache->sigmas(), o.adm_weighting);

  train::TrainState state;
  state.modules = {{"student", student.ptr().get()}};
  state.optimizers = {{"adam", &optimizer}};
  const std::string ckpt = (fs::path(o.work_dir) / "convert.ckpt").string();
  // The checkpoint before the last one: a divergence rolls back to it, because the guard trips
  // some steps after the gap starts to grow and the last checkpoint may already be past that.
  const std::string prev_ckpt = (fs::path(o.work_dir) / "convert.prev.ckpt").string();
  const std::string run_file = (fs::path(o.work_dir) / "run.json").string();
  const train::DataParallel& group = train::DataParallel::Get();
  LV_ASSIGN_OR_RETURN(const train::Shard shard, group.ShardOf(o.batch, "--batch"));
  std::vector<torch::Tensor> synced = weights;  // the gradients averaged across ranks
  synced.insert(synced.end(), gates.begin(), gates.end());
  // Rank 0 writes every file (checkpoints, run record, gates, progress, export).
  auto save = [&]() -> absl::Status {
    if (!group.root()) return absl::OkStatus();
    if (fs::exists(ckpt)) {
      fs::rename(ckpt, prev_ckpt, ec);
      if (ec) return absl::InternalError(absl::StrCat("renaming ", ckpt, ": ", ec.message()));
    }
    return train::SaveTrainState(ckpt, state);
  };
  auto save_record = [&](const RunRecord& r) {
    return group.root() ? SaveRunRecord(run_file, r) : absl::OkStatus();
  };
  // save() renames the last checkpoint aside before writing the new one: a run killed between
  // the two has only convert.prev.ckpt, which is where it resumes.
  if (fs::exists(ckpt)) {
    LV_RETURN_IF_ERROR(train::LoadTrainState(ckpt, &state));
  } else if (fs::exists(prev_ckpt)) {
    LV_RETURN_IF_ERROR(train::LoadTrainState(prev_ckpt, &state));
  }
  LV_RETURN_IF_ERROR(train::CheckRanksAgree(state));
  const int64_t first = state.next_step;
  train::ProgressLog log((fs::path(o.work_dir) / "convert.log").string(), first, o.steps);
  log.Line(absl::StrFormat(
      "convert %s: K=%d of %d layers, select %s%s, objective %s, %d steps x batch %d, cache %d "
      "videos x %d steps%s",
      o.base_dir, o.linear_layers, num_layers, LayerChoiceName(o.select),
      fixed.empty() ? "" : absl::StrCat(" -> linear ", absl::StrJoin(fixed, ",")),
      ObjectiveName(o.objective), o.steps, o.batch, cache->videos(), cache->steps(),
      first > 0 ? absl::StrCat(", resumed at step ", first) : ""));
  if (!summary.heuristic_scores.empty()) {
    log.Line(absl::StrCat("heuristic scores (velocity MSE with one layer linear): ",
                          absl::StrJoin(summary.heuristic_scores, " ")));
  }
  const int64_t anneal_steps = std::max<int64_t>(
      1, static_cast<int64_t>(std::llround(o.anneal_fraction * static_cast<double>(o.steps))));
  const int64_t freeze_step =
      o.steps -
      static_cast<int64_t>(std::llround(o.finetune_fraction * static_cast<double>(o.steps)));
  const std::string gates_file = (fs::path(o.work_dir) / "gates.json").string();
  bool frozen = false;
  Binarization bin;
  auto freeze = [&]() -> absl::Status {
    // Every rank freezes at the same step. The file is looked for before all ranks meet, and
    // rank 0 writes it only after: no rank reads a file rank 0 is writing.
    const bool saved = fs::exists(gates_file);
    LV_RETURN_IF_ERROR(group.Barrier());
    if (saved) {
      LV_RETURN_IF_ERROR(LoadBinarization(gates_file, &summary.r, &bin));
    } else {
      summary.r.clear();
      for (const torch::Tensor& g : gates) summary.r.push_back(g.item<double>());
      LV_ASSIGN_OR_RETURN(bin, Binarize(summary.r, sel));
      if (group.root()) LV_RETURN_IF_ERROR(SaveBinarization(gates_file, summary.r, bin));
    }
    FreezeGates(gates, summary.gate_layers, bin.linear);
    frozen = true;
    std::vector<std::string> rs;
    for (double r : summary.r) rs.push_back(absl::StrFormat("%.3f", r));
    log.Line(absl::StrCat("gates frozen at step ", std::max(first, freeze_step),
                          ": r before rounding [", absl::StrJoin(rs, " "), "] -> linear ",
                          absl::StrJoin(bin.linear, ","),
                          bin.rounding_agreed ? "" : " (rounding disagreed: the K smallest r)"));
    return absl::OkStatus();
  };
  DivergenceGuard guard(o.divergence_factor, static_cast<int>(o.divergence_window));
  int64_t last_checkpoint = first;
  // Wall time, rollbacks and the learning-rate back-off, carried across resumes.
  nlohmann::json run_json = nlohmann::json::object();
  if (first > 0 && fs::exists(run_file)) {
    LV_ASSIGN_OR_RETURN(run_json, io::ReadJsonFile(run_file));
  }
  RunRecord record = RunRecordOf(run_json);
  LV_ASSIGN_OR_RETURN(const train::ResumedOptions run_options,
                      train::CheckResumedOptions(run_json, RunOptions(o, base_sha, *cache), first,
                                                 o.allow_option_changes, o.work_dir));
  record.options = run_options.options;
  record.option_changes = run_options.changes;
  if (!run_options.note.empty()) log.Line(run_options.note);
  const auto start = std::chrono::steady_clock::now();
  const double seconds_before = record.seconds;
  auto elapsed = [&] {
    return seconds_before +
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  log.StartClock();
  int64_t step = first;
  for (; step < o.steps; ++step) {
    if (o.stop_after > 0 && step - first >= o.stop_after) break;
    if (gated && !frozen && step >= freeze_step) LV_RETURN_IF_ERROR(freeze());
    const Batch batch = DrawBatch(*cache, o, step, device, shard, adm_weights);
    const double lr_scale =
        record.lr_backoff * LearningRateScale(step, o.steps, freeze_step, o.lr_floor);
    set_rates(lr_scale);
    const double alpha = RegularizerAlpha(std::min(step, anneal_steps), anneal_steps);
    double obj_value = 0, gap_value = 0, con_value = 0, reg_value = 0, anchor_value = 0;
    LV_RETURN_IF_ERROR(TorchCall("conversion step", [&]() -> absl::Status {
      optimizer.zero_grad();
      for (torch::Tensor& g : gates) g.mutable_grad() = torch::Tensor();
      torch::Tensor objective;
      const torch::Tensor u_s = Velocity(student, batch.x, batch.t_now, batch.context, o.bf16);
      if (o.objective == Objective::kAdm) {
        const torch::Tensor dt = (batch.sigma_next - batch.sigma_now).view({-1, 1, 1, 1, 1});
        const torch::Tensor x_hat = batch.x + dt * (u_s + (batch.u_guided - batch.u_branch));
        torch::Tensor u_teacher, u_student;
        {
          torch::NoGradGuard no_grad;
          const torch::Tensor x_in = x_hat.detach();
          u_teacher = Velocity(teacher, x_in, batch.t_next, batch.context, o.bf16);
          u_student = Velocity(student, x_in, batch.t_next, batch.context, o.bf16);
        }
        AdmTerms terms = AdmLoss(x_hat, u_teacher, u_student, batch.sigma_next, batch.adm_weight);
        objective = terms.surrogate;
        LV_ASSIGN_OR_RETURN(gap_value, group.GlobalMean(terms.velocity_gap.item<double>()));
        if (o.adm_anchor > 0) {
          const torch::Tensor anchor = VelocityMseLoss(u_s, batch.u_branch);
          LV_ASSIGN_OR_RETURN(anchor_value, group.GlobalMean(anchor.item<double>()));
          objective = objective + o.adm_anchor * anchor;
        }
      } else {
        objective = VelocityMseLoss(u_s, batch.u_branch);
      }
      torch::Tensor total = objective;
      if (gated && !frozen) {
        const torch::Tensor con = ConstraintLoss(gates, sel);
        const torch::Tensor reg = RegularizationLoss(gates, alpha);
        total = total + o.lambda * (con + reg);
        con_value = con.item<double>();
        reg_value = reg.item<double>();
      }
      LV_ASSIGN_OR_RETURN(obj_value, group.GlobalMean(objective.item<double>()));
      if (o.objective == Objective::kMse) gap_value = obj_value;
      total.backward();
      // Every objective is a mean over this rank's rows, and the gate terms are the same on
      // every rank: the mean of the ranks' gradients is the combined batch's.
      LV_RETURN_IF_ERROR(group.AverageGradients(synced));
      torch::nn::utils::clip_grad_norm_(weights, 1.0);
      optimizer.step();
      torch::NoGradGuard no_grad;
      if (gated && !frozen) {
        for (torch::Tensor& g : gates) {  // SGD, projected back into [0, 1]
          if (g.grad().defined()) g.sub_(g.grad(), o.gate_lr);
          g.clamp_(0.0, 1.0);
        }
      }
      return absl::OkStatus();
    }));
    std::string extra = absl::StrFormat("gap %.3e", gap_value);
    if (o.objective == Objective::kAdm && o.adm_anchor > 0) {
      absl::StrAppendFormat(&extra, " anchor %.3e", anchor_value);
    }
    if (gated) {
      std::vector<std::string> rs, gs;
      for (const torch::Tensor& g : gates) {
        rs.push_back(absl::StrFormat("%.3f", g.item<double>()));
        gs.push_back(absl::StrFormat("%.2e", g.grad().defined() ? g.grad().item<double>() : 0.0));
      }
      if (frozen) {
        absl::StrAppendFormat(&extra, " gates frozen r [%s]", absl::StrJoin(rs, " "));
      } else {
        absl::StrAppendFormat(&extra, " con %.3f reg %.3f alpha %.2f r [%s] dL/dr [%s]", con_value,
                              reg_value, alpha, absl::StrJoin(rs, " "), absl::StrJoin(gs, " "));
      }
    }
    log.Step(step, gap_value, o.batch, o.lr * lr_scale, o.log_every, extra);
    if (((step + 1) % o.log_every == 0 || step + 1 == o.steps) && group.root()) {
      // work_dir/progress.json: what the server's job runner reports (WatchJob, /metrics).
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      nlohmann::json progress = {{"stage", "convert"},
                                 {"step", step + 1},
                                 {"total", o.steps},
                                 {"eta_s", secs / static_cast<double>(step + 1 - first) *
                                               static_cast<double>(o.steps - step - 1)},
                                 {"lr", o.lr * lr_scale},
                                 {"rollbacks", record.rollbacks},
                                 {"losses",
                                  {{"gap", gap_value},
                                   {"objective", obj_value},
                                   {"anchor", anchor_value},
                                   {"con", con_value},
                                   {"reg", reg_value}}}};
      if (gated) {
        std::vector<double> rs;
        for (const torch::Tensor& g : gates) rs.push_back(g.item<double>());
        progress["r"] = rs;
        progress["gate_layers"] = summary.gate_layers;
      }
      LV_RETURN_IF_ERROR(
          io::WriteJsonFile((fs::path(o.work_dir) / "progress.json").string(), progress));
    }
    summary.final_objective = gap_value;
    summary.final_constraint = con_value;
    summary.final_regularizer = reg_value;
    if (guard.Add(gap_value)) {
      const std::string what =
          std::isfinite(gap_value)
              ? absl::StrFormat(
                    "conversion diverged at step %d: velocity gap %.4g (%d-step mean %.4g, "
                    "lowest recent mean %.4g, limit %g x)",
                    step + 1, gap_value, guard.window(), guard.last_mean(), guard.best_mean(),
                    o.divergence_factor)
              : absl::StrFormat("conversion diverged at step %d: the velocity gap is %g", step + 1,
                                gap_value);
      if (record.rollbacks >= o.max_rollbacks || !fs::exists(ckpt)) {
        const std::string why = absl::StrFormat(
            "%s after %d rollback(s); nothing exported. The last checkpoint (step %d) is in %s: "
            "rerun with a lower --lr resumes from it, or start a new --work",
            what, record.rollbacks, last_checkpoint, o.work_dir);
        log.Line(why);
        return absl::FailedPreconditionError(why);
      }
      // Roll back: the last checkpoint, every learning rate halved, a fresh guard.
      const bool older = fs::exists(prev_ckpt);
      LV_RETURN_IF_ERROR(train::LoadTrainState(older ? prev_ckpt : ckpt, &state));
      if (older && group.root()) {  // both files now hold the step rolled back to
        fs::copy_file(prev_ckpt, ckpt, fs::copy_options::overwrite_existing, ec);
        if (ec) return absl::InternalError(absl::StrCat("copying ", prev_ckpt, ": ", ec.message()));
      }
      record.rollbacks += 1;
      record.lr_backoff *= 0.5;
      record.seconds = elapsed();
      LV_RETURN_IF_ERROR(save_record(record));
      if (gated && frozen && state.next_step < freeze_step) {  // back before the freeze
        for (torch::Tensor& g : gates) g.set_requires_grad(true);
        if (group.root()) fs::remove(gates_file, ec);
        frozen = false;
      }
      guard.RestartWindow();  // the reference (recent lowest means) stays
      log.Line(absl::StrFormat(
          "%s: rolled back to step %d with the learning rates x%g (rollback "
          "%d of at most %d)",
          what, state.next_step, record.lr_backoff, record.rollbacks, o.max_rollbacks));
      step = state.next_step - 1;  // the loop's ++step resumes at next_step
      continue;
    }
    if ((step + 1) % o.checkpoint_every == 0 || step + 1 == o.steps) {
      state.next_step = step + 1;
      LV_RETURN_IF_ERROR(save());
      record.seconds = elapsed();
      LV_RETURN_IF_ERROR(save_record(record));
      last_checkpoint = step + 1;
    }
  }
  summary.steps = step;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  summary.train_seconds = elapsed();
  summary.rollbacks = record.rollbacks;
  summary.lr_backoff = record.lr_backoff;
  if (step < o.steps) {
    state.next_step = step;
    LV_RETURN_IF_ERROR(save());
    record.seconds = elapsed();
    LV_RETURN_IF_ERROR(save_record(record));
    log.Line(absl::StrCat("stopped after step ", step, "; rerun the same command to resume"));
    return summary;
  }
  summary.finished = true;
  if (gated) {
    if (!frozen) LV_RETURN_IF_ERROR(freeze());  // finetune_fraction 0, or resumed at the end
    summary.linear = bin.linear;
    summary.rounding_agreed = bin.rounding_agreed;
  } else {
    summary.linear = fixed;
  }
  log.Line(absl::StrCat("linear layers: ", absl::StrJoin(summary.linear, ","),
                        gated && !summary.rounding_agreed
                            ? " (rounding disagreed: the K smallest r were taken)"
                            : ""));
  if (!o.out_dir.empty() && group.root()) {
    LV_RETURN_IF_ERROR(Export(o, student, summary, *cache, record.option_changes));
    log.Line(absl::StrCat("exported ", o.out_dir));
  }
  LV_RETURN_IF_ERROR(group.Barrier());  // the other ranks return once the export exists
  return summary;
}

}  // namespace linvideo::core::posttrain

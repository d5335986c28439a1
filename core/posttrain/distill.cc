#include "core/posttrain/distill.h"

#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/attention/attention.h"
#include "core/common/status.h"
#include "core/io/json_file.h"
#include "core/io/safetensors.h"
#include "core/io/state_dict.h"
#include "core/models/wan/dit_key_map.h"
#include "core/pipeline/model_folder.h"
#include "core/pipeline/text_to_video.h"
#include "core/posttrain/objectives.h"
#include "core/posttrain/student.h"
#include "core/posttrain/trajectory_cache.h"
#include "core/sampling/flow_schedule.h"
#include "core/train/data_parallel.h"
#include "core/train/run_options.h"
#include "core/train/train_state.h"

namespace linvideo::core::posttrain {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kPromptStream = 301, kNoiseStream = 302, kTimeStream = 303;

absl::Status Bad(const std::string& text) { return absl::InvalidArgumentError(text); }

// The draws of one update (generator or fake score): prompts, G's start noise and re-noising, the
// unrolled step k, the DM / flow-matching sigma and noise. `update` counts every update of the
// run (fake and generator), so a resumed run draws what it would have.
struct Draws {
  torch::Tensor context;               // [B, L, D] the prompts' embeddings
  torch::Tensor noise;                 // [B, C, F', h, w] G's start
  std::vector<torch::Tensor> renoise;  // one per unrolled step
  int64_t k = 0;                       // G's step whose prediction trains / is used
  torch::Tensor sigma;                 // [B] the re-noising sigma of x₀ (after the shift)
  torch::Tensor eps;                   // [B, C, F', h, w]
};

// The draw is the combined batch's (o.batch rows, the same generator sequence for any world
// size); `rows` are the ones this process keeps (train::DataParallel).
Draws Draw(const TrajectoryCache& cache, const DistillOptions& o, double shift, int64_t steps,
           int64_t update, const c10::Device& device, const train::Shard& rows) {
  at::Generator prompts = train::StepGenerator(o.seed, update, kPromptStream);
  at::Generator noise = train::StepGenerator(o.seed, update, kNoiseStream);
  at::Generator times = train::StepGenerator(o.seed, update, kTimeStream);
  Draws d;
  const torch::Tensor videos = at::randint(cache.videos(), {o.batch}, prompts, at::kLong);
  std::vector<torch::Tensor> ctx;
  for (int64_t b = rows.begin; b < rows.begin + rows.count; ++b) {
    ctx.push_back(cache.Get(videos[b].item<int64_t>(), 0).context);
  }
  d.context = torch::stack(ctx).to(device);
  std::vector<int64_t> shape = {o.batch};
  for (int64_t s : cache.latent_shape()) shape.push_back(s);
  const auto mine = [&](const torch::Tensor& all) {
    return all.narrow(0, rows.begin, rows.count).to(device);
  };
  d.noise = mine(at::randn(shape, noise));
  d.k = o.backward_simulation ? at::randint(steps, {1}, times, at::kLong).item<int64_t>() : 0;
  for (int64_t j = 0; j < d.k; ++j) d.renoise.push_back(mine(at::randn(shape, noise)));
  const torch::Tensor u = at::rand({o.batch}, times, at::kDouble) * (o.max_t - o.min_t) + o.min_t;
  d.sigma = mine((u * shift / (1.0 + (shift - 1.0) * u)).to(torch::kFloat));
  d.eps = mine(at::randn(shape, noise));
  return d;
}

torch::Tensor Col(const torch::Tensor& per_sample) { return per_sample.view({-1, 1, 1, 1, 1}); }

torch::Tensor Timesteps(double timestep, int64_t batch, const c10::Device& device) {
  return torch::full({batch}, static_cast<float>(timestep),
                     torch::TensorOptions().dtype(torch::kFloat).device(device));
}

// G's x̂₀ at its step d.k: the first k steps run from noise without gradient (fewstep rule:
// predict x̂₀, re-noise to the next sigma), the prediction at step k carries the gradient when
// `train` is set.
torch::Tensor GeneratorSample(wan::WanModel& g, const sampling::FlowSchedule& s, const Draws& d,
                              bool bf16, bool train) {
  torch::Tensor x = d.noise;
  const int64_t batch = x.size(0);
  {
    torch::NoGradGuard no_grad;
    for (int64_t j = 0; j < d.k; ++j) {
      const torch::Tensor v =
          Velocity(g, x, Timesteps(s.timesteps[j], batch, x.device()), d.context, bf16);
      const torch::Tensor x0 = x - v * s.sigmas[j];
      x = x0 * (1.0 - s.sigmas[j + 1]) + d.renoise[j] * s.sigmas[j + 1];
    }
  }
  const torch::Tensor t = Timesteps(s.timesteps[d.k], batch, x.device());
  if (train) return x - Velocity(g, x, t, d.context, bf16) * s.sigmas[d.k];
  torch::NoGradGuard no_grad;
  return x - Velocity(g, x, t, d.context, bf16) * s.sigmas[d.k];
}

// Adam's step count (every parameter steps together; the largest count, so a parameter that got
// no gradient does not hide the others). Iterates the state map: its key type differs between
// LibTorch 1.13 (a string) and 2.x.
int64_t AdamSteps(torch::optim::Adam& optimizer) {
  int64_t steps = 0;
  for (const auto& entry : optimizer.state()) {
    steps = std::max<int64_t>(
        steps, static_cast<const torch::optim::AdamParamState&>(*entry.second).step());
  }
  return steps;
}

std::vector<torch::Tensor> Trainable(wan::WanModel& m) {
  std::vector<torch::Tensor> out;
  for (auto& p : m->parameters()) {
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

// The base folder's serving section: the shift it samples with (what the distilled model serves
// with too).
absl::StatusOr<double> BaseShift(const std::string& root) {
  params::ModelLimits limits;
  LV_RETURN_IF_ERROR(pipeline::ApplyModelIndexLimits(root, limits));
  if (!limits.fixed_timesteps.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(root, " is already a distilled few-step model (timesteps [",
                     absl::StrJoin(limits.fixed_timesteps, ", "),
                     "]); distil the converted model it came from"));
  }
  return limits.default_shift;
}

// What defines the run (core/train/run_options.h), keyed by flag: checked on every resume.
nlohmann::json RunOptions(const DistillOptions& o, double shift, const std::string& base_sha,
                          const std::string& real_sha, const TrajectoryCache& cache) {
  nlohmann::json options = {{"base", absl::StrCat("transformer sha256 ", base_sha)},
                            {"cache", absl::StrCat("manifest sha256 ", cache.manifest_sha256())},
                            {"timesteps", o.timesteps},
                            {"shift", shift},
                            {"batch", o.batch},
                            {"fake-updates", o.fake_updates},
                            {"real-guidance", o.real_guidance},
                            {"lr", o.lr},
                            {"fake-lr", o.fake_lr},
                            {"min-t", o.min_t},
                            {"max-t", o.max_t},
                            {"ema-decay", o.ema_decay},
                            {"backward-simulation", o.backward_simulation ? "on" : "off"},
                            {"seed", o.seed},
                            {"precision", o.bf16 ? "bf16" : "fp32"}};
  // Only a real score other than base is recorded, so runs made before --real resume unchanged.
  if (real_sha != base_sha) options["real"] = absl::StrCat("transformer sha256 ", real_sha);
  return options;
}

absl::Status Export(const DistillOptions& o, const train::Ema& ema, wan::WanModel& generator,
                    const DistillSummary& s, double shift, const TrajectoryCache& cache,
                    double train_seconds, const nlohmann::json& option_changes,
                    const std::string& real_sha) {
  LV_ASSIGN_OR_RETURN(pipeline::ModelFolder base, pipeline::ResolveModelFolder(o.base_dir));
  LV_ASSIGN_OR_RETURN(wan::WanModel model, wan::CreateWanModel(generator->config()));
  LV_RETURN_IF_ERROR(io::LoadStateDict(*model, io::StateDict(*generator)));
  ema.CopyTo(*model);
  const pipeline::WeightsRewrite rewrite =
      pipeline::RewriteOf(*base.transformer, base.root, "diffusion_pytorch_model");
  const fs::path out = fs::absolute(o.out_dir);
  const fs::path tmp = out.string() + ".partial";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  LV_RETURN_IF_ERROR(pipeline::CopyModelFolder(base.root, tmp.string(), {rewrite}));
  io::TensorMap weights;
  for (auto& [name, tensor] : io::StateDict(*model)) {
    weights[name] = tensor.detach().to(torch::kCPU, torch::kFloat);
  }
  if (base.diffusers) {
    LV_ASSIGN_OR_RETURN(weights, wan::DitToDiffusersNames(weights));
  }
  LV_RETURN_IF_ERROR(io::WriteWeights((tmp / rewrite.dir).string(), rewrite.OutputStem(), weights));
  const fs::path index = tmp / "model_index.json";
  nlohmann::json model_index = nlohmann::json::object();
  if (fs::exists(index)) {
    LV_ASSIGN_OR_RETURN(model_index, io::ReadJsonFile(index.string()));
  }
  // The serving section: what ApplyModelIndexLimits reads (fewstep over the list, guidance off,
  // the shift the generator was trained at).
  nlohmann::json& serving = model_index["linvideo"];
  if (!serving.is_object()) serving = nlohmann::json::object();
  serving["sampler"] = "fewstep";
  serving["timesteps"] = o.timesteps;
  serving["default_steps"] = o.timesteps.size();
  serving["default_guidance"] = 1.0;
  serving["default_shift"] = shift;
  LV_ASSIGN_OR_RETURN(std::string base_sha, TransformerWeightsSha256(o.base_dir));
  std::vector<std::string> kinds;
  for (auto kind : generator->config().attention_kinds) {
    kinds.push_back(attention::AttentionKindName(kind));
  }
  nlohmann::json lineage = {
      {"method", "dmd2"},
      {"base_model", fs::absolute(base.root).lexically_normal().string()},
      {"base_weights_sha256", base_sha},
      {"attention_kinds", kinds},
      {"timesteps", o.timesteps},
      {"schedule_timesteps", s.schedule_timesteps},
      {"shift", shift},
      {"steps", s.steps},
      {"batch", o.batch},
      {"fake_updates", o.fake_updates},
      {"real_guidance", o.real_guidance},
      // The real score at the end of the run ("base", or the teacher's folder and weights).
      {"real_model",
       real_sha == base_sha
           ? nlohmann::json("base")
           : nlohmann::json{{"path", fs::absolute(o.real_dir).lexically_normal().string()},
                            {"weights_sha256", real_sha}}},
      {"lr", o.lr},
      {"fake_lr", o.fake_lr},
      {"min_t", o.min_t},
      {"max_t", o.max_t},
      {"ema_decay", o.ema_decay},
      {"backward_simulation", o.backward_simulation},
      {"gan_head", false},
      {"seed", o.seed},
      {"train_seconds", train_seconds},
      {"final_losses", {{"dm", s.final_dm_loss}, {"fake_score", s.final_fake_loss}}},
      {"trajectories", {{"videos", cache.videos()}, {"manifest_sha256", cache.manifest_sha256()}}}};
  // A resume that changed options (--allow-option-changes): which, from what, at which step.
  if (option_changes.is_array() && !option_changes.empty()) {
    lineage["option_changes"] = option_changes;
  }
  model_index["linvideo_distillation"] = lineage;
  LV_RETURN_IF_ERROR(io::WriteJsonFile(index.string(), model_index));
  fs::rename(tmp, out, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("moving ", tmp.string(), " to ", out.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace

torch::Tensor DistributionMatchingGradient(const torch::Tensor& x0, const torch::Tensor& x0_fake,
                                           const torch::Tensor& x0_real) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < x0.dim(); ++d) dims.push_back(d);
  torch::Tensor scale = (x0.detach() - x0_real).abs();
  scale = dims.empty() ? scale : scale.mean(dims, /*keepdim=*/true);
  return (x0_fake - x0_real) / scale.clamp_min(1e-6);
}

torch::Tensor DistributionMatchingLoss(const torch::Tensor& x0, const torch::Tensor& grad) {
  const torch::Tensor target = (x0 - grad).detach();
  return 0.5 * (x0 - target).pow(2).mean();
}

absl::Status ValidateDistillOptions(const DistillOptions& o) {
  if (o.base_dir.empty() || o.cache_dir.empty() || o.work_dir.empty()) {
    return Bad(
        "distillation needs --base (the model to distil), --cache (trajectories of its teacher: "
        "the prompts) and --work");
  }
  if (o.timesteps.empty() || o.timesteps.size() > 16) {
    return Bad(absl::StrCat("--timesteps needs 1..16 entries, got ", o.timesteps.size()));
  }
  for (size_t i = 0; i < o.timesteps.size(); ++i) {
    if (o.timesteps[i] < 1 || o.timesteps[i] > 1000 ||
        (i > 0 && o.timesteps[i] >= o.timesteps[i - 1])) {
      return Bad(absl::StrCat("--timesteps ", absl::StrJoin(o.timesteps, ","),
                              " is not allowed; use strictly decreasing integers in [1, 1000] "
                              "(e.g. 1000,750,500,250)"));
    }
  }
  if (!(o.shift >= 0) || !std::isfinite(o.shift)) {
    return Bad("--shift must be > 0 (0: the base's serving default)");
  }
  if (o.steps < 1 || o.batch < 1) return Bad("--steps and --batch must be >= 1");
  if (o.fake_updates < 1 || o.fake_updates > 100) {
    return Bad(absl::StrCat("--fake-updates must be in [1, 100], got ", o.fake_updates));
  }
  if (!(o.real_guidance >= 0 && o.real_guidance <= 20)) {
    return Bad(absl::StrCat("--real-guidance must be in [0, 20] (<= 1: no guidance), got ",
                            o.real_guidance));
  }
  if (!(o.lr > 0) || !(o.fake_lr > 0)) return Bad("need --lr > 0 and --fake-lr > 0");
  if (!(o.min_t > 0 && o.min_t < o.max_t && o.max_t < 1)) {
    return Bad(absl::StrCat("need 0 < --min-t < --max-t < 1, got ", o.min_t, " and ", o.max_t));
  }
  if (!(o.ema_decay >= 0 && o.ema_decay < 1)) {
    return Bad(absl::StrCat("--ema-decay must be in [0, 1) (0: no averaging), got ", o.ema_decay));
  }
  if (o.log_every < 1 || o.checkpoint_every < 1) {
    return Bad("--log-every and --checkpoint-every must be >= 1");
  }
  return absl::OkStatus();
}

absl::StatusOr<DistillSummary> RunDistillation(const DistillOptions& o) {
  LV_RETURN_IF_ERROR(ValidateDistillOptions(o));
  LV_ASSIGN_OR_RETURN(pipeline::ModelFolder base, pipeline::ResolveModelFolder(o.base_dir));
  if (!base.transformer) {
    return absl::NotFoundError(absl::StrCat(o.base_dir, " has no transformer component"));
  }
  if (!o.out_dir.empty() && fs::exists(o.out_dir)) {
    return absl::AlreadyExistsError(
        absl::StrCat("--out ", o.out_dir,
                     " already exists; the export never overwrites a folder: remove it or "
                     "choose another"));
  }
  LV_ASSIGN_OR_RETURN(double base_shift, BaseShift(base.root));
  const double shift = o.shift > 0 ? o.shift : base_shift;
  LV_ASSIGN_OR_RETURN(sampling::FlowSchedule schedule,
                      sampling::MakeTimestepSchedule(o.timesteps, shift));
  LV_ASSIGN_OR_RETURN(auto cache, TrajectoryCache::Open(o.cache_dir));
  // The cache must come from this model or from the teacher it was converted from.
  LV_ASSIGN_OR_RETURN(std::string base_sha, TransformerWeightsSha256(o.base_dir));
  std::string teacher_sha;
  if (fs::exists(fs::path(base.root) / "model_index.json")) {
    LV_ASSIGN_OR_RETURN(nlohmann::json index,
                        io::ReadJsonFile((fs::path(base.root) / "model_index.json").string()));
    if (index.contains("linvideo_conversion") && index["linvideo_conversion"].is_object()) {
      teacher_sha = index["linvideo_conversion"].value("base_weights_sha256", std::string());
    }
  }
  if (cache->base_weights_sha256() != base_sha && cache->base_weights_sha256() != teacher_sha) {
    return absl::FailedPreconditionError(
        absl::StrCat("the trajectory cache ", o.cache_dir, " was made from ", cache->base_model(),
                     " (sha256 ", cache->base_weights_sha256(), "), which is neither --base ",
                     o.base_dir, " nor the teacher it was converted from"));
  }
  // The real score: base, or the teacher base was converted from (nothing else: its scores must
  // be of the distribution base was made to imitate, and its dimensions base's).
  std::string real_sha = base_sha;
  std::optional<pipeline::ModelFolder> real_folder;
  if (!o.real_dir.empty()) {
    LV_ASSIGN_OR_RETURN(real_folder, pipeline::ResolveModelFolder(o.real_dir));
    if (!real_folder->transformer) {
      return absl::NotFoundError(
          absl::StrCat("--real ", o.real_dir, " has no transformer component"));
    }
    LV_ASSIGN_OR_RETURN(real_sha, TransformerWeightsSha256(o.real_dir));
    if (real_sha != base_sha && real_sha != teacher_sha) {
      return absl::InvalidArgumentError(
          absl::StrCat("--real ", o.real_dir, " (transformer sha256 ", real_sha,
                       ") is neither --base nor the teacher it was converted from",
                       teacher_sha.empty() ? " (--base records no conversion)"
                                           : absl::StrCat(" (sha256 ", teacher_sha, ")")));
    }
  }
  const bool guided = o.real_guidance > 1.0;
  if (guided && !cache->negative_context().defined()) {
    return absl::FailedPreconditionError(
        "--real-guidance > 1 needs the negative prompt's embedding, and this trajectory cache "
        "has none (made without guidance); use --real-guidance 1");
  }
  std::error_code ec;
  fs::create_directories(o.work_dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create ", o.work_dir, ": ", ec.message()));
  }
  const c10::Device device = o.device.device;
  const DeviceOptions fp32{device, at::kFloat};
  LV_ASSIGN_OR_RETURN(
      wan::WanModel real,
      pipeline::LoadDit(real_folder ? *real_folder->transformer : *base.transformer, fp32));
  LV_ASSIGN_OR_RETURN(wan::WanModel generator, pipeline::LoadDit(*base.transformer, fp32));
  LV_ASSIGN_OR_RETURN(wan::WanModel fake, pipeline::LoadDit(*base.transformer, fp32));
  for (auto& p : real->parameters()) p.set_requires_grad(false);
  real->eval();
  generator->train();
  fake->train();
  const std::vector<torch::Tensor> g_params = Trainable(generator), f_params = Trainable(fake);
  torch::optim::Adam g_opt(g_params, torch::optim::AdamOptions(o.lr).betas({0.0, 0.999}));
  torch::optim::Adam f_opt(f_params, torch::optim::AdamOptions(o.fake_lr).betas({0.0, 0.999}));
  train::Ema ema(*generator);

  train::TrainState state;
  state.modules = {{"generator", generator.ptr().get()}, {"fake_score", fake.ptr().get()}};
  state.optimizers = {{"generator_adam", &g_opt}, {"fake_adam", &f_opt}};
  state.emas = {{"generator_ema", &ema}};
  const std::string ckpt = (fs::path(o.work_dir) / "distill.ckpt").string();
  const std::string prev_ckpt = (fs::path(o.work_dir) / "distill.prev.ckpt").string();
  if (fs::exists(ckpt)) {
    LV_RETURN_IF_ERROR(train::LoadTrainState(ckpt, &state));
  } else if (fs::exists(prev_ckpt)) {  // killed between renaming the last one aside and writing
    LV_RETURN_IF_ERROR(train::LoadTrainState(prev_ckpt, &state));
  }
  const train::DataParallel& group = train::DataParallel::Get();
  LV_ASSIGN_OR_RETURN(const train::Shard shard, group.ShardOf(o.batch, "--batch"));
  LV_RETURN_IF_ERROR(train::CheckRanksAgree(state));
  // Rank 0 writes every file (checkpoints, run record, progress, export).
  auto save = [&]() -> absl::Status {
    if (!group.root()) return absl::OkStatus();
    if (fs::exists(ckpt)) {
      fs::rename(ckpt, prev_ckpt, ec);
      if (ec) return absl::InternalError(absl::StrCat("renaming ", ckpt, ": ", ec.message()));
    }
    return train::SaveTrainState(ckpt, state);
  };
  // Wall time and the run's options across resumes (run.json).
  const std::string run_file = (fs::path(o.work_dir) / "run.json").string();
  double seconds_before = 0;
  const int64_t first = state.next_step;
  nlohmann::json run_record;
  if (first > 0 && fs::exists(run_file)) {
    LV_ASSIGN_OR_RETURN(run_record, io::ReadJsonFile(run_file));
    seconds_before = run_record.value("train_seconds", 0.0);
  }
  LV_ASSIGN_OR_RETURN(
      const train::ResumedOptions run_options,
      train::CheckResumedOptions(run_record, RunOptions(o, shift, base_sha, real_sha, *cache),
                                 first, o.allow_option_changes, o.work_dir));
  auto save_record = [&](double train_seconds) -> absl::Status {
    if (!group.root()) return absl::OkStatus();
    return io::WriteJsonFile(run_file, {{"train_seconds", train_seconds},
                                        {"options", run_options.options},
                                        {"option_changes", run_options.changes}});
  };
  DistillSummary summary;
  summary.schedule_timesteps = schedule.timesteps;
  // A resumed run starts from the last logged losses (what the lineage reports when this process
  // runs no step, e.g. exporting a finished checkpoint).
  const std::string progress_file = (fs::path(o.work_dir) / "progress.json").string();
  if (first > 0 && fs::exists(progress_file)) {
    LV_ASSIGN_OR_RETURN(nlohmann::json progress, io::ReadJsonFile(progress_file));
    if (progress.contains("losses") && progress["losses"].is_object()) {
      summary.final_dm_loss = progress["losses"].value("dm", 0.0);
      summary.final_fake_loss = progress["losses"].value("fake_score", 0.0);
    }
  }
  train::ProgressLog log((fs::path(o.work_dir) / "distill.log").string(), first, o.steps);
  log.Line(absl::StrFormat(
      "distill %s (DMD2): timesteps [%s] -> [%s] at shift %g, %d generator steps x batch %d, "
      "%d fake-score updates each, real score %s, real guidance %g, backward simulation %s%s",
      o.base_dir, absl::StrJoin(o.timesteps, ", "), absl::StrJoin(schedule.timesteps, ", "), shift,
      o.steps, o.batch, o.fake_updates,
      real_sha == base_sha ? std::string("the base") : absl::StrCat(o.real_dir, " (its teacher)"),
      o.real_guidance, o.backward_simulation ? "on" : "off",
      first > 0 ? absl::StrCat(", resumed at step ", first) : ""));
  if (!run_options.note.empty()) log.Line(run_options.note);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  log.StartClock();
  const int64_t steps_k = schedule.steps();
  int64_t step = first;
  for (; step < o.steps; ++step) {
    if (o.stop_after > 0 && step - first >= o.stop_after) break;
    double fake_loss = 0, fake_norm = 0, dm_loss = 0, g_norm = 0, dm_grad_mag = 0;
    int64_t k_used = 0;
    LV_RETURN_IF_ERROR(TorchCall("distillation step", [&]() -> absl::Status {
      const int64_t per_step = o.fake_updates + 1;
      // The fake score follows G: flow matching on G's current samples, no guidance.
      for (int64_t j = 0; j < o.fake_updates; ++j) {
        const Draws d = Draw(*cache, o, shift, steps_k, step * per_step + j, device, shard);
        const torch::Tensor x0 = GeneratorSample(generator, schedule, d, o.bf16, false);
        const torch::Tensor x_t = Col(1.0 - d.sigma) * x0 + Col(d.sigma) * d.eps;
        f_opt.zero_grad();
        const torch::Tensor v = Velocity(fake, x_t, d.sigma * 1000.0, d.context, o.bf16);
        const torch::Tensor loss = VelocityMseLoss(v, d.eps - x0);
        loss.backward();
        // Both losses are means over this rank's rows (the DM gradient is normalised per
        // sample): the mean of the ranks' gradients is the combined batch's.
        LV_RETURN_IF_ERROR(group.AverageGradients(f_params));
        fake_norm = torch::nn::utils::clip_grad_norm_(f_params, 1.0);
        f_opt.step();
        LV_ASSIGN_OR_RETURN(const double global_loss, group.GlobalMean(loss.item<double>()));
        fake_loss += global_loss / static_cast<double>(o.fake_updates);
      }
      // The generator: distribution matching at a re-noised sample of its own output.
      const Draws d =
          Draw(*cache, o, shift, steps_k, step * per_step + o.fake_updates, device, shard);
      k_used = d.k;
      g_opt.zero_grad();
      const torch::Tensor x0 = GeneratorSample(generator, schedule, d, o.bf16, true);
      torch::Tensor grad;
      {
        torch::NoGradGuard no_grad;
        const torch::Tensor x_t = Col(1.0 - d.sigma) * x0.detach() + Col(d.sigma) * d.eps;
        const torch::Tensor t = d.sigma * 1000.0;
        torch::Tensor v_real = Velocity(real, x_t, t, d.context, o.bf16);
        if (guided) {
          const torch::Tensor neg =
              cache->negative_context().unsqueeze(0).expand_as(d.context).to(device);
          const torch::Tensor v_uncond = Velocity(real, x_t, t, neg, o.bf16);
          v_real = v_uncond + o.real_guidance * (v_real - v_uncond);
        }
        const torch::Tensor v_fake = Velocity(fake, x_t, t, d.context, o.bf16);
        const torch::Tensor x0_real = x_t - Col(d.sigma) * v_real;
        const torch::Tensor x0_fake = x_t - Col(d.sigma) * v_fake;
        grad = DistributionMatchingGradient(x0.detach(), x0_fake, x0_real);
        LV_ASSIGN_OR_RETURN(dm_grad_mag, group.GlobalMean(grad.abs().mean().item<double>()));
      }
      const torch::Tensor loss = DistributionMatchingLoss(x0, grad);
      loss.backward();
      LV_RETURN_IF_ERROR(group.AverageGradients(g_params));
      g_norm = torch::nn::utils::clip_grad_norm_(g_params, 1.0);
      g_opt.step();
      ema.Update(*generator, o.ema_decay);
      LV_ASSIGN_OR_RETURN(dm_loss, group.GlobalMean(loss.item<double>()));
      return absl::OkStatus();
    }));
    if (!std::isfinite(dm_loss) || !std::isfinite(fake_loss)) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "distillation diverged at step %d (DM loss %g, fake-score loss %g); nothing exported; "
          "the last checkpoint is in %s: rerun with a lower --lr to resume from it",
          step + 1, dm_loss, fake_loss, o.work_dir));
    }
    log.Step(step, dm_loss, o.batch, o.lr, o.log_every,
             absl::StrFormat("fake %.3e |dm grad| %.3e grad-norm G %.2e F %.2e k %d", fake_loss,
                             dm_grad_mag, g_norm, fake_norm, k_used));
    summary.final_dm_loss = dm_loss;
    summary.final_fake_loss = fake_loss;
    if (((step + 1) % o.log_every == 0 || step + 1 == o.steps) && group.root()) {
      // work_dir/progress.json: what the server's job runner reports.
      const double secs = elapsed();
      nlohmann::json progress = {{"stage", "distill"},
                                 {"step", step + 1},
                                 {"total", o.steps},
                                 {"eta_s", secs / static_cast<double>(step + 1 - first) *
                                               static_cast<double>(o.steps - step - 1)},
                                 {"lr", o.lr},
                                 {"losses",
                                  {{"dm", dm_loss},
                                   {"fake_score", fake_loss},
                                   {"dm_grad", dm_grad_mag},
                                   {"grad_norm_generator", g_norm},
                                   {"grad_norm_fake", fake_norm}}}};
      LV_RETURN_IF_ERROR(
          io::WriteJsonFile((fs::path(o.work_dir) / "progress.json").string(), progress));
    }
    if ((step + 1) % o.checkpoint_every == 0 || step + 1 == o.steps) {
      state.next_step = step + 1;
      LV_RETURN_IF_ERROR(save());
      LV_RETURN_IF_ERROR(save_record(seconds_before + elapsed()));
    }
  }
  summary.steps = step;
  summary.seconds = elapsed();
  summary.generator_updates = AdamSteps(g_opt);
  summary.fake_score_updates = AdamSteps(f_opt);
  const double train_seconds = seconds_before + summary.seconds;
  if (step < o.steps) {
    state.next_step = step;
    LV_RETURN_IF_ERROR(save());
    LV_RETURN_IF_ERROR(save_record(train_seconds));
    log.Line(absl::StrCat("stopped after step ", step, "; rerun the same command to resume"));
    return summary;
  }
  summary.finished = true;
  if (!o.out_dir.empty() && group.root()) {
    LV_RETURN_IF_ERROR(Export(o, ema, generator, summary, shift, *cache, train_seconds,
                              run_options.changes, real_sha));
    log.Line(absl::StrCat("exported ", o.out_dir));
  }
  LV_RETURN_IF_ERROR(group.Barrier());  // the other ranks return once the export exists
  return summary;
}

}  // namespace linvideo::core::posttrain

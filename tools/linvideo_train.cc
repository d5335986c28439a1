// linvideo-train: trains the shapes-world default model (core/train) stage by stage.
//
//   linvideo-train vae    --work DIR [--steps N --batch N --lr X --seed N --threads N]
//   linvideo-train dit    --work DIR --vae DIR --tokenizer FILE [--out DIR] [--steps N ...]
//   linvideo-train export --work DIR --vae DIR --tokenizer FILE --out DIR
//   linvideo-train corpus --out FILE [--seeds N]   (prompt corpus for spm_train)
//
// Every stage resumes from its checkpoint in --work. Defaults are the recipe in
// core/train/recipe.h; scripts/train-default.sh runs the whole recipe.

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/common/runtime.h"
#include "core/common/status.h"
#include "core/data/prompt.h"
#include "core/data/sampler.h"
#include "core/models/wan/vae_config.h"
#include "core/pipeline/model_folder.h"
#include "core/posttrain/convert.h"
#include "core/posttrain/distill.h"
#include "core/posttrain/trajectory_cache.h"
#include "core/train/data_parallel.h"
#include "core/train/recipe.h"
#include "media/bytes_io.h"
#include "media/png.h"
#include "tools/flags.h"
#include "tools/train_launch.h"

namespace {

namespace tr = linvideo::core::train;
namespace pt = linvideo::core::posttrain;
using linvideo::tools::Flags;

constexpr char kUsage[] = R"(usage: linvideo-train <command> [flags]

commands:
  vae     train the VAE            --work DIR [--stage 1|2|3] [--init-from DIR] [--steps N]
                                   [--stop-at N] [--batch N] [--lr X] [--crop N] [--window N]
                                   [--base-dim N] [--edge-weight X] [--first-frame-weight X]
                                   [--frame0-marker X] (latent frame 0 offset by +-X stds)
                                   [--scale-equivariance X] (weight of the 2x2-pooled latent's
                                   reconstruction of the 2x2-pooled clip)
                                   [--precision fp32|bf16]
                                   [--seed N] [--log-every N] [--checkpoint-every N] [--threads N]
                                   stage 1: short windows from scratch; stage 2: fine-tune on
                                   full-length clips (--init-from the stage 1 directory);
                                   stage 3: 300 more with --frame0-marker 2 (--init-from stage 2)
  dit     train DiT + text encoder --work DIR --vae VAE_WORK_DIR --tokenizer SPIECE_MODEL
                                   [--out MODEL_DIR] [--steps N] [--batch N] [--clips N] [--lr X]
                                   [--shift X] [--cfg-dropout X] [--ema X] [--dim N] [--layers N]
                                   [--frames N] [--height N] [--width N] [--seed N]
                                   [--log-every N] [--checkpoint-every N] [--threads N]
                                   [--object-weight X] [--precision fp32|bf16]
                                   [--frame-batch N] (extra single-latent-frame samples/step)
                                   [--gelu aten|fused] (fused, the recipe's: the vectorised
                                   GELU kernel; aten: LibTorch's, as models/default v5 and
                                   earlier were trained)
                                   [--layout-jitter X] (< 0: paths anywhere; >= 0: centred +-X)
  vae-check  reconstruction PSNR of held-out full clips and the eval detectors on them:
             --work DIR [--clips N] [--sheet PNG] [--scenes heldout|eval] (eval: the fixed
             evaluation set's scenes, the VAE's ceiling on exactly what linvideo-eval scores)
             [--latent-noise STD --stats MODEL_DIR] (Gaussian noise of STD in MODEL_DIR's
             normalised latent units added before decoding: the decoder's robustness)
  dit-check  x0-prediction error of a model folder per noise level on fresh clips (laid out
             as the model's training clips were), and the eval detectors on the decoded
             predictions:
             --model DIR [--clips N (8)] [--seed N] [--sheet PNG] [--sigmas 0.1,0.3,0.5,0.7,0.9]
             [--sample] (each sigma: a guided Euler sample from x_t down to 0 on the model's
             serving schedule instead of one x0 prediction) [--training-clips] (the
             first N clips the model trained on instead of fresh ones: memorisation)
  export  write the model folder   (the dit flags; --out required)
  corpus  prompt corpus for spm_train: --out FILE [--seeds N]

LinVideo post-training (docs/linvideo.md):
  trajectories  the teacher's sampling trajectories, the data-free training set:
                --model DIR --out DIR [--videos N (256)] [--batch N (8)] [--shard-videos N (32)]
                [--seed N] [--steps N] [--guidance X] [--shift X] [--width N --height N
                --frames N] (default: the model's serving defaults) [--storage bf16|fp32]
                [--device cpu|cuda[:N]] [--threads N]; resumes when rerun
  convert       selective transfer + ADM: --base DIR --cache DIR --work DIR --linear-layers K
                [--out DIR] [--select auto|heuristic|layers:2,3,5] [--pinned 0 (comma list;
                "none" for none)] [--objective adm|mse] [--steps N (400)] [--batch N (4)]
                [--lr X (5e-5)] [--feature-map-lr X (2e-4)] [--gate-lr X (0.5)]
                [--lr-floor X (0.1: the rates decay (cosine) to 10% over the finetune part)]
                [--adm-weighting uniform|paper (uniform: every trajectory step weighs the same)]
                [--adm-anchor X (0.05: adds X times the MSE to the cached teacher velocity at
                the drawn point, the restoring term one-step ADM lacks; 0: pure ADM, which
                diverged in our runs; ignored with --objective mse)]
                [--lambda X (0.01)] [--r-init X (0.9)]
                [--uncond-fraction X] [--anneal-fraction X (0.35: alpha reaches 2)]
                [--finetune-fraction X (0.25: last part trains with the gates frozen at 0/1)]
                [--heuristic-points N] [--seed N] [--log-every N] [--checkpoint-every N]
                [--stop-after N] [--device cpu|cuda[:N]] [--precision fp32|bf16] [--threads N]
                [--divergence-factor X (30: when the mean gap of the last --divergence-window N
                (50) steps exceeds X times the lowest such mean of the last 2N steps, roll back
                to the last checkpoint with the learning rates halved; 0: off)]
                [--max-rollbacks N (3; then stop, nothing exported)]
                [--trainable all|attention] (attention: only the self-attention layers train;
                optimizer state for ~20% of the weights, e.g. the 1.3B on a 24 GB CPU machine)
                [--allow-option-changes (a resume with other training options than its
                checkpoint's is refused without it; with it the change is recorded)]
                progress in WORK/convert.log; resumes from WORK/convert.ckpt when rerun
  distill       4-step distillation (DMD2) of a converted model: --base DIR --cache DIR
                (trajectories of its teacher: the prompts) --work DIR [--out DIR]
                [--timesteps 1000,750,500,250] [--shift X (the base's serving shift)]
                [--steps N (400) generator updates] [--batch N (2)] [--fake-updates N (5)]
                [--real-guidance X (3)] [--real DIR (the real score: --base, or the teacher
                it was converted from)] [--lr X (1e-5)] [--fake-lr X (1e-5)] [--min-t X (0.02)]
                [--max-t X (0.98)] [--ema-decay X (0.99)] [--backward-simulation on|off]
                [--seed N] [--log-every N] [--checkpoint-every N] [--stop-after N]
                [--device cpu|cuda[:N]] [--precision fp32|bf16] [--threads N]
                [--allow-option-changes (a resume with other training options than its
                checkpoint's is refused without it; with it the change is recorded)]
                progress in WORK/distill.log; resumes from WORK/distill.ckpt when rerun; the
                exported folder declares its sampler (fewstep over the list, guidance off)

Multi-process (data-parallel) training of vae, dit, convert and distill:
  launch        --nproc N [--master-port P] -- COMMAND [FLAGS...]: N processes on this machine
                (--batch is the combined batch; each process uses --threads threads). Or set
                WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT (LOCAL_RANK) per process as torchrun
                and the Kubeflow training operator do; LINVIDEO_DIST_TIMEOUT_S bounds waits
                (1800). Rank 0 writes logs, checkpoints and exports; a run resumes with any
                process count that divides --batch. docs/training.md

Each stage resumes from the checkpoint in its --work directory. The defaults are the recipe of
the shipped default model (core/train/recipe.h); scripts/train-default.sh runs it end to end.
)";

const std::set<std::string> kCommon = {
    "work",    "steps",    "batch", "lr", "seed", "log-every", "checkpoint-every",
    "threads", "precision"};

// --precision fp32|bf16: bf16 runs the forward passes under CPU bf16 autocast.
absl::Status Precision(const Flags& f, bool* bf16) {
  const std::string p = f.Get("precision", *bf16 ? "bf16" : "fp32");
  if (p != "fp32" && p != "bf16") {
    return absl::InvalidArgumentError(
        absl::StrCat("--precision must be fp32 or bf16, got '", p, "'"));
  }
  *bf16 = p == "bf16";
  return absl::OkStatus();
}

// --device cpu|cuda|cuda:N. In a multi-process run, plain `cuda` is this rank's GPU,
// cuda:LOCAL_RANK (what `launch --nproc N` on an N-GPU machine needs); cuda:N is taken as given.
absl::StatusOr<c10::Device> ParseDeviceFlag(const Flags& f) {
  std::string device = f.Get("device", "cpu");
  const tr::DataParallel& group = tr::DataParallel::Get();
  if (device == "cuda" && group.distributed()) {
    device = absl::StrCat("cuda:", group.local_rank());
  }
  return linvideo::core::ParseDevice(device);
}

// --seed N (>= 0); `seed` keeps its value when the flag is absent.
absl::Status Seed(const Flags& f, uint64_t* seed) {
  LV_ASSIGN_OR_RETURN(int64_t s, f.GetInt("seed", static_cast<int64_t>(*seed)));
  if (s < 0) return absl::InvalidArgumentError("--seed must be >= 0");
  *seed = static_cast<uint64_t>(s);
  return absl::OkStatus();
}

absl::Status Common(const Flags& f, std::string* work, int64_t* steps, int64_t* batch, double* lr,
                    uint64_t* seed, int64_t* log_every, int64_t* checkpoint_every) {
  LV_ASSIGN_OR_RETURN(*work, f.Required("work"));
  LV_ASSIGN_OR_RETURN(*steps, f.GetInt("steps", *steps));
  LV_ASSIGN_OR_RETURN(*batch, f.GetInt("batch", *batch));
  LV_ASSIGN_OR_RETURN(*lr, f.GetDouble("lr", *lr));
  LV_RETURN_IF_ERROR(Seed(f, seed));
  LV_ASSIGN_OR_RETURN(*log_every, f.GetInt("log-every", *log_every));
  LV_ASSIGN_OR_RETURN(*checkpoint_every, f.GetInt("checkpoint-every", *checkpoint_every));
  return absl::OkStatus();
}

absl::Status TrainVae(const std::vector<std::string>& args) {
  std::set<std::string> known = kCommon;
  known.insert({"crop", "window", "base-dim", "log", "stop-at", "init-from", "stage", "edge-weight",
                "first-frame-weight", "frame0-marker", "scale-equivariance"});
  LV_ASSIGN_OR_RETURN(Flags f, Flags::Parse(args, known));
  const std::string stage = f.Get("stage", "1");
  if (stage != "1" && stage != "2" && stage != "3") {
    return absl::InvalidArgumentError(
        "--stage must be 1 (from scratch), 2 (full-length clips) or 3 (frame-0 marker)");
  }
  tr::VaeTrainOptions o = stage == "1"   ? tr::DefaultVaeRecipe()
                          : stage == "2" ? tr::DefaultVaeLongRecipe()
                                         : tr::DefaultVaeMarkerRecipe();
  LV_RETURN_IF_ERROR(Common(f, &o.work_dir, &o.steps, &o.batch, &o.lr, &o.seed, &o.log_every,
                            &o.checkpoint_every));
  LV_ASSIGN_OR_RETURN(o.crop, f.GetInt("crop", o.crop));
  LV_ASSIGN_OR_RETURN(o.window, f.GetInt("window", o.window));
  LV_ASSIGN_OR_RETURN(o.config.base_dim, f.GetInt("base-dim", o.config.base_dim));
  LV_ASSIGN_OR_RETURN(o.stop_at, f.GetInt("stop-at", o.stop_at));
  LV_ASSIGN_OR_RETURN(o.edge_weight, f.GetDouble("edge-weight", o.edge_weight));
  LV_ASSIGN_OR_RETURN(o.first_frame_weight,
                      f.GetDouble("first-frame-weight", o.first_frame_weight));
  LV_ASSIGN_OR_RETURN(o.frame0_marker, f.GetDouble("frame0-marker", o.frame0_marker));
  LV_ASSIGN_OR_RETURN(o.scale_equivariance,
                      f.GetDouble("scale-equivariance", o.scale_equivariance));
  LV_RETURN_IF_ERROR(Precision(f, &o.bf16));
  o.init_from = f.Get("init-from", o.init_from);
  if (stage != "1" && o.init_from.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--stage ", stage,
                                                   " needs --init-from (the stage ",
                                                   stage == "2" ? "1" : "2", " work directory)"));
  }
  o.log_file = f.Get("log");
  LV_ASSIGN_OR_RETURN(tr::TrainSummary s, tr::TrainVae(o));
  if (s.steps_run == 0) {
    std::cout << "VAE: " << o.work_dir << " is already trained (" << o.steps << " steps)\n";
  } else {
    std::cout << absl::StrFormat("VAE: %d steps this run, loss %.5f -> %.5f, psnr %.2f dB\n",
                                 s.steps_run, s.first_loss, s.last_loss, s.extra);
  }
  return absl::OkStatus();
}

// A PNG contact sheet with one row per entry of `rows`: `per_video` evenly spaced frames of each
// of its videos (uint8 [F, H, W, 3], all the same size).
absl::Status SaveSheet(const std::vector<std::vector<torch::Tensor>>& rows, int64_t per_video,
                       const std::string& path) {
  std::vector<uint8_t> tiles;
  int columns = 0, tiles_count = 0, height = 0, width = 0;
  for (const auto& row : rows) {
    columns = std::max(columns, static_cast<int>(row.size() * per_video));
    for (const torch::Tensor& v : row) {
      const int64_t frames = v.size(0);
      height = static_cast<int>(v.size(1));
      width = static_cast<int>(v.size(2));
      for (int64_t j = 0; j < per_video; ++j) {
        const int64_t k = per_video == 1 ? 0 : j * (frames - 1) / (per_video - 1);
        const torch::Tensor frame = v[k].contiguous();
        const uint8_t* p = frame.data_ptr<uint8_t>();
        tiles.insert(tiles.end(), p, p + frame.numel());
        ++tiles_count;
      }
    }
  }
  linvideo::media::FrameView view{tiles.data(), tiles_count, height, width};
  linvideo::media::ContactSheetOptions options;
  options.columns = columns;
  options.max_frames = view.frames;
  LV_ASSIGN_OR_RETURN(std::string png, linvideo::media::ContactSheet(view, options));
  return linvideo::media::SaveBytes(path, png);
}

absl::Status CheckVae(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(Flags f, Flags::Parse(args, {"work", "clips", "sheet", "threads", "base-dim",
                                                   "scenes", "latent-noise", "stats"}));
  tr::VaeTrainOptions o = tr::DefaultVaeRecipe();
  LV_ASSIGN_OR_RETURN(o.work_dir, f.Required("work"));
  LV_ASSIGN_OR_RETURN(o.config.base_dim, f.GetInt("base-dim", o.config.base_dim));
  LV_ASSIGN_OR_RETURN(const double latent_noise, f.GetDouble("latent-noise", 0.0));
  if (latent_noise != 0.0 && !f.Has("stats")) {
    return absl::InvalidArgumentError(
        "--latent-noise needs --stats MODEL_DIR: the model folder whose latent statistics "
        "(vae/config.json) define the normalised units of the noise");
  }
  if (f.Has("stats")) {
    // The latent statistics a model folder's DiT was trained with, so --latent-noise is in its
    // normalised units.
    namespace pl = linvideo::core::pipeline;
    LV_ASSIGN_OR_RETURN(const pl::ModelFolder folder, pl::ResolveModelFolder(f.Get("stats", "")));
    if (!folder.vae) {
      return absl::InvalidArgumentError(
          absl::StrCat("--stats ", f.Get("stats", ""), " has no vae/ component"));
    }
    LV_ASSIGN_OR_RETURN(const linvideo::core::wan::VaeConfig stats, pl::ReadVaeConfig(*folder.vae));
    o.config.latents_mean = stats.latents_mean;
    o.config.latents_std = stats.latents_std;
  }
  const std::string which = f.Get("scenes", "heldout");
  if (which != "heldout" && which != "eval") {
    return absl::InvalidArgumentError(
        absl::StrCat("--scenes must be heldout or eval, got '", which, "'"));
  }
  const auto scenes = which == "eval" ? tr::VaeCheckScenes::kEvalSet : tr::VaeCheckScenes::kHeldOut;
  LV_ASSIGN_OR_RETURN(int64_t clips, f.GetInt("clips", which == "eval" ? 20 : 8));
  LV_ASSIGN_OR_RETURN(tr::VaeCheck check, tr::CheckVae(o, clips, scenes, latent_noise));
  for (size_t i = 0; i < check.psnr.size(); ++i) {
    std::cout << absl::StrFormat("clip %d: %.2f dB\n", i, check.psnr[i]);
  }
  std::cout << absl::StrFormat(
      "mean PSNR %.2f dB over %d %s clips (%dx%dx%d)%s\n", check.mean_psnr, clips,
      which == "eval" ? "evaluation-set" : "held-out", o.clip_frames, o.height, o.width,
      latent_noise > 0 ? absl::StrFormat(", latent noise %g", latent_noise) : std::string());
  const auto print = [](const char* what, const linvideo::core::eval::ScoreSummary& s) {
    const auto& a = s.adherence;
    std::cout << absl::StrFormat(
        "detectors on the %s: background %.0f%%, colour %.0f%%, shape %.0f%%, motion %.0f%%, "
        "size %.0f%%, count %.0f%%\n",
        what, 100 * a.background, 100 * a.color, 100 * a.shape, 100 * a.motion, 100 * a.size,
        100 * a.count);
  };
  print("reconstructions", check.scores);
  if (check.seen_scores.videos > 0) print("seen-prompt reconstructions", check.seen_scores);
  if (f.Has("sheet")) {
    // Rows: per clip, 4 key frames of the truth then the same 4 decoded.
    std::vector<std::vector<torch::Tensor>> rows;
    for (size_t i = 0; i < check.truth.size(); ++i)
      rows.push_back({check.truth[i], check.decoded[i]});
    LV_RETURN_IF_ERROR(SaveSheet(rows, 4, f.Get("sheet")));
  }
  return absl::OkStatus();
}

absl::Status CheckDit(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(Flags f,
                      Flags::Parse(args, {"model", "clips", "sheet", "threads", "seed", "sigmas"},
                                   {"sample", "training-clips"}));
  LV_ASSIGN_OR_RETURN(std::string model, f.Required("model"));
  LV_ASSIGN_OR_RETURN(int64_t clips, f.GetInt("clips", 8));
  LV_ASSIGN_OR_RETURN(int64_t seed, f.GetInt("seed", 0));
  std::vector<double> sigmas;
  for (absl::string_view part : absl::StrSplit(f.Get("sigmas", "0.1,0.3,0.5,0.7,0.9"), ',')) {
    double v;
    if (!absl::SimpleAtod(part, &v)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--sigmas takes comma-separated numbers in (0, 1], e.g. 0.5,0.9,1; got '", part, "'"));
    }
    sigmas.push_back(v);
  }
  const bool sample = f.Has("sample") && f.Get("sample") != "false";
  const bool training_clips = f.Has("training-clips") && f.Get("training-clips") != "false";
  LV_ASSIGN_OR_RETURN(
      tr::DitCheck check,
      tr::CheckDit(model, clips, sigmas, static_cast<uint64_t>(seed), sample, training_clips));
  const char* what = sample ? "guided samples from x_t down to 0" : "x0 predictions";
  std::cout << what << ": MSE against x0 (normalised latent units) on " << clips
            << (training_clips ? " of the model's own training clips"
                               : " fresh training-split clips")
            << ":\n  sigma    all   objects\n";
  for (size_t k = 0; k < sigmas.size(); ++k) {
    std::cout << absl::StrFormat("  %.2f  %7.4f  %7.4f\n", sigmas[k], check.mse[k],
                                 check.object_mse[k]);
  }
  std::cout << "eval detectors on the decoded " << what
            << ":\n"
               "  sigma  colour  shape  motion  size  count\n";
  for (size_t k = 0; k < sigmas.size(); ++k) {
    const auto& a = check.scores[k].adherence;
    std::cout << absl::StrFormat("  %.2f  %5.0f%%  %4.0f%%  %5.0f%%  %3.0f%%  %4.0f%%\n", sigmas[k],
                                 100 * a.color, 100 * a.shape, 100 * a.motion, 100 * a.size,
                                 100 * a.count);
  }
  if (f.Has("sheet")) {
    // Rows: per clip, the truth's first and last frame, then the same two of each prediction.
    std::vector<std::vector<torch::Tensor>> rows;
    for (size_t i = 0; i < check.truth.size(); ++i) {
      rows.push_back({check.truth[i]});
      for (const torch::Tensor& p : check.pred[i]) rows.back().push_back(p);
    }
    LV_RETURN_IF_ERROR(SaveSheet(rows, 2, f.Get("sheet")));
  }
  return absl::OkStatus();
}

absl::StatusOr<tr::DitTrainOptions> DitOptions(const std::vector<std::string>& args) {
  std::set<std::string> known = kCommon;
  known.insert({"vae", "tokenizer", "out", "clips", "shift", "cfg-dropout", "ema", "dim", "layers",
                "frames", "height", "width", "log", "guidance", "object-weight", "layout-jitter",
                "frame-batch", "gelu"});
  LV_ASSIGN_OR_RETURN(Flags f, Flags::Parse(args, known));
  tr::DitTrainOptions o = tr::DefaultDitRecipe();
  LV_RETURN_IF_ERROR(Common(f, &o.work_dir, &o.steps, &o.batch, &o.lr, &o.seed, &o.log_every,
                            &o.checkpoint_every));
  LV_ASSIGN_OR_RETURN(o.vae_dir, f.Required("vae"));
  LV_ASSIGN_OR_RETURN(o.tokenizer_file, f.Required("tokenizer"));
  o.out_dir = f.Get("out");
  o.log_file = f.Get("log");
  LV_ASSIGN_OR_RETURN(o.clips, f.GetInt("clips", o.clips));
  LV_ASSIGN_OR_RETURN(o.frame_batch, f.GetInt("frame-batch", o.frame_batch));
  LV_RETURN_IF_ERROR(Precision(f, &o.bf16));
  const std::string gelu = f.Get("gelu", o.fused_gelu ? "fused" : "aten");
  if (gelu != "aten" && gelu != "fused") {
    return absl::InvalidArgumentError(
        absl::StrCat("--gelu must be aten or fused, got '", gelu, "'"));
  }
  o.fused_gelu = gelu == "fused";
  LV_ASSIGN_OR_RETURN(o.shift, f.GetDouble("shift", o.shift));
  LV_ASSIGN_OR_RETURN(o.cfg_dropout, f.GetDouble("cfg-dropout", o.cfg_dropout));
  LV_ASSIGN_OR_RETURN(o.object_weight, f.GetDouble("object-weight", o.object_weight));
  LV_ASSIGN_OR_RETURN(o.ema_decay, f.GetDouble("ema", o.ema_decay));
  LV_ASSIGN_OR_RETURN(o.scenes.layout_jitter, f.GetDouble("layout-jitter", o.scenes.layout_jitter));
  LV_ASSIGN_OR_RETURN(o.default_guidance, f.GetDouble("guidance", o.default_guidance));
  LV_ASSIGN_OR_RETURN(o.dit.dim, f.GetInt("dim", o.dit.dim));
  LV_ASSIGN_OR_RETURN(int64_t layers, f.GetInt("layers", o.dit.num_layers));
  if (layers < 1) return absl::InvalidArgumentError("--layers must be >= 1");
  o.dit.SetNumLayers(layers);
  LV_ASSIGN_OR_RETURN(o.frames, f.GetInt("frames", o.frames));
  LV_ASSIGN_OR_RETURN(o.height, f.GetInt("height", o.height));
  LV_ASSIGN_OR_RETURN(o.width, f.GetInt("width", o.width));
  return o;
}

absl::Status TrainDit(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(tr::DitTrainOptions o, DitOptions(args));
  LV_ASSIGN_OR_RETURN(tr::TrainSummary s, tr::TrainDit(o));
  const std::string exported = o.out_dir.empty() ? "" : ", exported to " + o.out_dir;
  if (s.steps_run == 0) {
    std::cout << "DiT: " << o.work_dir << " is already trained (" << o.steps << " steps)"
              << exported << "\n";
  } else {
    std::cout << absl::StrFormat("DiT: %d steps this run, loss %.5f -> %.5f%s\n", s.steps_run,
                                 s.first_loss, s.last_loss, exported);
  }
  return absl::OkStatus();
}

absl::Status Export(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(tr::DitTrainOptions o, DitOptions(args));
  if (o.out_dir.empty()) return absl::InvalidArgumentError("export needs --out MODEL_DIR");
  LV_RETURN_IF_ERROR(tr::ExportDit(o));
  std::cout << "exported " << o.out_dir << "\n";
  return absl::OkStatus();
}

// Every prompt paraphrase of `seeds` training scenes, one per line (a spm_train corpus).
absl::Status Corpus(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(Flags f, Flags::Parse(args, {"out", "seeds"}));
  LV_ASSIGN_OR_RETURN(const std::string out, f.Required("out"));
  LV_ASSIGN_OR_RETURN(int64_t seeds, f.GetInt("seeds", 5000));
  if (seeds < 1) return absl::InvalidArgumentError("--seeds must be >= 1");
  std::ofstream file(out);
  if (!file) return absl::InvalidArgumentError(absl::StrCat("cannot write ", out));
  namespace data = linvideo::core::data;
  for (int64_t s = 0; s < seeds; ++s) {
    const data::SceneSpec spec = data::SampleScene(static_cast<uint64_t>(s), data::Split::kTrain);
    for (int p = 0; p < data::kNumParaphrases; ++p) file << data::Prompt(spec, p) << "\n";
  }
  return file.good() ? absl::OkStatus() : absl::InternalError("write failed: " + out);
}

absl::Status Trajectories(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(Flags f,
                      Flags::Parse(args, {"model", "out", "videos", "batch", "shard-videos", "seed",
                                          "steps", "guidance", "shift", "width", "height", "frames",
                                          "storage", "device", "threads", "stop-after-shards"}));
  pt::TrajectoryCacheOptions o;
  LV_ASSIGN_OR_RETURN(o.model_dir, f.Required("model"));
  LV_ASSIGN_OR_RETURN(o.out_dir, f.Required("out"));
  LV_ASSIGN_OR_RETURN(o.videos, f.GetInt("videos", o.videos));
  LV_ASSIGN_OR_RETURN(o.batch, f.GetInt("batch", o.batch));
  LV_ASSIGN_OR_RETURN(o.shard_videos, f.GetInt("shard-videos", o.shard_videos));
  LV_RETURN_IF_ERROR(Seed(f, &o.seed));
  LV_ASSIGN_OR_RETURN(o.generation.steps, f.GetInt("steps", 0));
  LV_ASSIGN_OR_RETURN(o.generation.width, f.GetInt("width", 0));
  LV_ASSIGN_OR_RETURN(o.generation.height, f.GetInt("height", 0));
  LV_ASSIGN_OR_RETURN(o.generation.frames, f.GetInt("frames", 0));
  LV_ASSIGN_OR_RETURN(o.generation.guidance,
                      f.GetDouble("guidance", linvideo::core::params::kUseDefault));
  LV_ASSIGN_OR_RETURN(o.generation.shift,
                      f.GetDouble("shift", linvideo::core::params::kUseDefault));
  LV_ASSIGN_OR_RETURN(o.stop_after_shards, f.GetInt("stop-after-shards", 0));
  const std::string storage = f.Get("storage", "bf16");
  if (storage != "bf16" && storage != "fp32") {
    return absl::InvalidArgumentError(
        absl::StrCat("--storage '", storage, "' is not allowed; use bf16 or fp32"));
  }
  o.storage = storage == "bf16" ? c10::kBFloat16 : c10::kFloat;
  LV_ASSIGN_OR_RETURN(o.device.device, ParseDeviceFlag(f));
  LV_ASSIGN_OR_RETURN(
      pt::TrajectoryCacheSummary s,
      pt::BuildTrajectoryCache(o, [](const std::string& line) { std::cout << line << std::endl; }));
  std::cout << absl::StrFormat(
      "trajectories: %d videos in %d shards (%d written now, %.1f s), %.1f MB on disk in %s%s\n",
      s.videos, s.shards, s.shards_written, s.seconds, s.bytes / 1e6, o.out_dir,
      s.complete ? "" : " (incomplete: rerun to finish)");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> ParseIndexList(const std::string& flag,
                                                    const std::string& text) {
  std::vector<int64_t> out;
  if (text == "none") return out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int64_t v = -1;
    if (!absl::SimpleAtoi(part, &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": '", part, "' is not a layer index (use e.g. 0,3 or none)"));
    }
    out.push_back(v);
  }
  return out;
}

absl::Status Convert(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(Flags f, Flags::Parse(args,
                                            {"base",
                                             "cache",
                                             "work",
                                             "out",
                                             "linear-layers",
                                             "select",
                                             "pinned",
                                             "objective",
                                             "steps",
                                             "batch",
                                             "lr",
                                             "gate-lr",
                                             "feature-map-lr",
                                             "lr-floor",
                                             "adm-weighting",
                                             "adm-anchor",
                                             "lambda",
                                             "r-init",
                                             "uncond-fraction",
                                             "heuristic-points",
                                             "anneal-fraction",
                                             "finetune-fraction",
                                             "trainable",
                                             "divergence-factor",
                                             "max-rollbacks",
                                             "divergence-window",
                                             "seed",
                                             "log-every",
                                             "checkpoint-every",
                                             "stop-after",
                                             "device",
                                             "precision",
                                             "threads"},
                                            {"allow-option-changes"}));
  pt::ConvertOptions o;
  LV_ASSIGN_OR_RETURN(o.base_dir, f.Required("base"));
  LV_ASSIGN_OR_RETURN(o.cache_dir, f.Required("cache"));
  LV_ASSIGN_OR_RETURN(o.work_dir, f.Required("work"));
  o.out_dir = f.Get("out");
  LV_ASSIGN_OR_RETURN(std::string k, f.Required("linear-layers"));
  if (!absl::SimpleAtoi(k, &o.linear_layers)) {
    return absl::InvalidArgumentError(absl::StrCat("--linear-layers '", k, "' is not a number"));
  }
  LV_ASSIGN_OR_RETURN(o.select, pt::ParseLayerChoice(f.Get("select", "auto")));
  LV_ASSIGN_OR_RETURN(o.pinned, ParseIndexList("pinned", f.Get("pinned", "0")));
  LV_ASSIGN_OR_RETURN(o.objective, pt::ParseObjective(f.Get("objective", "adm")));
  LV_ASSIGN_OR_RETURN(o.steps, f.GetInt("steps", o.steps));
  LV_ASSIGN_OR_RETURN(o.batch, f.GetInt("batch", o.batch));
  LV_ASSIGN_OR_RETURN(o.lr, f.GetDouble("lr", o.lr));
  LV_ASSIGN_OR_RETURN(o.gate_lr, f.GetDouble("gate-lr", o.gate_lr));
  LV_ASSIGN_OR_RETURN(o.feature_map_lr, f.GetDouble("feature-map-lr", o.feature_map_lr));
  LV_ASSIGN_OR_RETURN(o.lr_floor, f.GetDouble("lr-floor", o.lr_floor));
  LV_ASSIGN_OR_RETURN(o.adm_weighting, pt::ParseAdmWeighting(f.Get("adm-weighting", "uniform")));
  LV_ASSIGN_OR_RETURN(o.adm_anchor, f.GetDouble("adm-anchor", o.adm_anchor));
  LV_ASSIGN_OR_RETURN(o.lambda, f.GetDouble("lambda", o.lambda));
  LV_ASSIGN_OR_RETURN(o.r_init, f.GetDouble("r-init", o.r_init));
  LV_ASSIGN_OR_RETURN(o.uncond_fraction, f.GetDouble("uncond-fraction", o.uncond_fraction));
  LV_ASSIGN_OR_RETURN(o.heuristic_points, f.GetInt("heuristic-points", o.heuristic_points));
  LV_ASSIGN_OR_RETURN(o.anneal_fraction, f.GetDouble("anneal-fraction", o.anneal_fraction));
  LV_ASSIGN_OR_RETURN(o.finetune_fraction, f.GetDouble("finetune-fraction", o.finetune_fraction));
  LV_RETURN_IF_ERROR(Seed(f, &o.seed));
  LV_ASSIGN_OR_RETURN(o.log_every, f.GetInt("log-every", o.log_every));
  LV_ASSIGN_OR_RETURN(o.checkpoint_every, f.GetInt("checkpoint-every", o.checkpoint_every));
  LV_ASSIGN_OR_RETURN(o.stop_after, f.GetInt("stop-after", 0));
  LV_ASSIGN_OR_RETURN(o.divergence_factor, f.GetDouble("divergence-factor", o.divergence_factor));
  LV_ASSIGN_OR_RETURN(o.max_rollbacks, f.GetInt("max-rollbacks", o.max_rollbacks));
  LV_ASSIGN_OR_RETURN(o.divergence_window, f.GetInt("divergence-window", o.divergence_window));
  LV_ASSIGN_OR_RETURN(o.device.device, ParseDeviceFlag(f));
  LV_RETURN_IF_ERROR(Precision(f, &o.bf16));
  const std::string trainable = f.Get("trainable", "all");
  if (trainable != "all" && trainable != "attention") {
    return absl::InvalidArgumentError(
        absl::StrCat("--trainable '", trainable, "' is not allowed; use all or attention"));
  }
  o.attention_only = trainable == "attention";
  o.allow_option_changes = f.Switch("allow-option-changes");
  LV_ASSIGN_OR_RETURN(pt::ConvertSummary s, pt::RunConversion(o));
  if (!s.finished) {
    std::cout << "convert: stopped at step " << s.steps << " of " << o.steps
              << "; rerun the same command to resume\n";
    return absl::OkStatus();
  }
  std::cout << absl::StrFormat(
      "convert: %d steps (%.0f s this run, %.0f s in all, %d rollback(s)), "
      "linear layers %s%s\n",
      s.steps, s.seconds, s.train_seconds, s.rollbacks, absl::StrJoin(s.linear, ","),
      o.out_dir.empty() ? "" : absl::StrCat(", exported ", o.out_dir));
  return absl::OkStatus();
}

absl::Status Distill(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(Flags f, Flags::Parse(args,
                                            {"base",
                                             "cache",
                                             "work",
                                             "out",
                                             "timesteps",
                                             "shift",
                                             "steps",
                                             "batch",
                                             "fake-updates",
                                             "real-guidance",
                                             "real",
                                             "lr",
                                             "fake-lr",
                                             "min-t",
                                             "max-t",
                                             "ema-decay",
                                             "backward-simulation",
                                             "seed",
                                             "log-every",
                                             "checkpoint-every",
                                             "stop-after",
                                             "device",
                                             "precision",
                                             "threads"},
                                            {"allow-option-changes"}));
  pt::DistillOptions o;
  LV_ASSIGN_OR_RETURN(o.base_dir, f.Required("base"));
  LV_ASSIGN_OR_RETURN(o.cache_dir, f.Required("cache"));
  LV_ASSIGN_OR_RETURN(o.work_dir, f.Required("work"));
  o.out_dir = f.Get("out");
  o.real_dir = f.Get("real");
  if (f.Has("timesteps")) {
    o.timesteps.clear();
    for (absl::string_view part : absl::StrSplit(f.Get("timesteps"), ',', absl::SkipEmpty())) {
      int64_t t = 0;
      if (!absl::SimpleAtoi(part, &t)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--timesteps: '", part, "' is not an integer (use e.g. 1000,750,500,250)"));
      }
      o.timesteps.push_back(t);
    }
  }
  LV_ASSIGN_OR_RETURN(o.shift, f.GetDouble("shift", o.shift));
  LV_ASSIGN_OR_RETURN(o.steps, f.GetInt("steps", o.steps));
  LV_ASSIGN_OR_RETURN(o.batch, f.GetInt("batch", o.batch));
  LV_ASSIGN_OR_RETURN(o.fake_updates, f.GetInt("fake-updates", o.fake_updates));
  LV_ASSIGN_OR_RETURN(o.real_guidance, f.GetDouble("real-guidance", o.real_guidance));
  LV_ASSIGN_OR_RETURN(o.lr, f.GetDouble("lr", o.lr));
  LV_ASSIGN_OR_RETURN(o.fake_lr, f.GetDouble("fake-lr", o.fake_lr));
  LV_ASSIGN_OR_RETURN(o.min_t, f.GetDouble("min-t", o.min_t));
  LV_ASSIGN_OR_RETURN(o.max_t, f.GetDouble("max-t", o.max_t));
  LV_ASSIGN_OR_RETURN(o.ema_decay, f.GetDouble("ema-decay", o.ema_decay));
  const std::string sim = f.Get("backward-simulation", "on");
  if (sim != "on" && sim != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("--backward-simulation '", sim, "' is not allowed; use on or off"));
  }
  o.backward_simulation = sim == "on";
  LV_RETURN_IF_ERROR(Seed(f, &o.seed));
  LV_ASSIGN_OR_RETURN(o.log_every, f.GetInt("log-every", o.log_every));
  LV_ASSIGN_OR_RETURN(o.checkpoint_every, f.GetInt("checkpoint-every", o.checkpoint_every));
  LV_ASSIGN_OR_RETURN(o.stop_after, f.GetInt("stop-after", 0));
  LV_ASSIGN_OR_RETURN(o.device.device, ParseDeviceFlag(f));
  LV_RETURN_IF_ERROR(Precision(f, &o.bf16));
  o.allow_option_changes = f.Switch("allow-option-changes");
  LV_ASSIGN_OR_RETURN(pt::DistillSummary s, pt::RunDistillation(o));
  if (!s.finished) {
    std::cout << "distill: stopped at step " << s.steps << " of " << o.steps
              << "; rerun the same command to resume\n";
    return absl::OkStatus();
  }
  std::cout << absl::StrFormat(
      "distill: %d generator steps (%.0f s this run), timesteps [%s], final DM loss %.3e, "
      "fake-score loss %.3e%s\n",
      s.steps, s.seconds, absl::StrJoin(s.schedule_timesteps, ", "), s.final_dm_loss,
      s.final_fake_loss, o.out_dir.empty() ? "" : absl::StrCat(", exported ", o.out_dir));
  return absl::OkStatus();
}

// Joins the process group the environment describes (torchrun / Kubeflow variables), or stays a
// single process without WORLD_SIZE. LINVIDEO_DIST_TIMEOUT_S bounds the rendezvous and every
// collective (default 1800 s: rank 0 alone encodes the DiT stage's clips while the others wait).
//
// Checks, exports and trajectory caches are one process's work: with WORLD_SIZE > 1, rank 0 runs
// them alone and the other ranks return false (nothing to do). A job that runs `trajectories` then
// `convert` on every rank still lines up: convert's rendezvous waits for rank 0.
absl::StatusOr<bool> JoinGroup(const std::string& command) {
  LV_ASSIGN_OR_RETURN(tr::ParallelEnv env, tr::ParseParallelEnv(std::getenv));
  int64_t timeout_s = 1800;
  if (const char* t = std::getenv("LINVIDEO_DIST_TIMEOUT_S"); t != nullptr && *t != '\0') {
    if (!absl::SimpleAtoi(t, &timeout_s) || timeout_s < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("LINVIDEO_DIST_TIMEOUT_S='", t, "' must be a number of seconds >= 1"));
    }
  }
  if (env.world_size > 1 && !linvideo::tools::TrainsDataParallel(command)) {
    if (env.rank != 0) {
      std::cout << "linvideo-train " << command << ": rank " << env.rank
                << " has nothing to do (rank 0 runs this command alone)\n";
      return false;
    }
    env = tr::ParallelEnv{};
  }
  LV_RETURN_IF_ERROR(tr::DataParallel::Init(env, std::chrono::seconds(timeout_s)));
  if (env.world_size > 1 && env.rank == 0) {
    std::cout << "linvideo-train " << command << ": " << env.world_size
              << " processes (Gloo), rendezvous " << env.master_addr << ":" << env.master_port
              << "\n";
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "launch") return linvideo::tools::LaunchTrainGroup(args);
  int threads = 0;
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--threads") threads = std::atoi(args[i + 1].c_str());
  }
  linvideo::core::InitRuntime(threads);
  absl::StatusOr<bool> runs = JoinGroup(command);
  if (!runs.ok()) {
    std::cerr << "linvideo-train " << command << ": " << runs.status().message() << "\n";
    return runs.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  if (!*runs) return 0;
  // Rank 0 reports; the others' summaries would repeat it (errors still go to stderr).
  if (!tr::DataParallel::Get().root()) std::cout.rdbuf(nullptr);
  absl::Status status;
  if (command == "vae") {
    status = TrainVae(args);
  } else if (command == "vae-check") {
    status = CheckVae(args);
  } else if (command == "dit-check") {
    status = CheckDit(args);
  } else if (command == "dit") {
    status = TrainDit(args);
  } else if (command == "export") {
    status = Export(args);
  } else if (command == "trajectories") {
    status = Trajectories(args);
  } else if (command == "convert") {
    status = Convert(args);
  } else if (command == "distill") {
    status = Distill(args);
  } else if (command == "corpus") {
    status = Corpus(args);
  } else {
    std::cerr << "unknown command '" << command << "'\n" << kUsage;
    return 2;
  }
  if (!status.ok()) {
    std::cerr << "linvideo-train " << command << ": " << status.message() << "\n";
    return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}

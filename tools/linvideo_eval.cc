// linvideo-eval: the shapes-world quality harness.
//   validate-detectors: detector accuracy per attribute on ground-truth clips.
//   run: generate the fixed evaluation prompt set with a model (and optionally a reference model
//        on the same seeds), score every video, write eval.json, eval.md and contact_sheet.png.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/common/runtime.h"
#include "core/common/status.h"
#include "core/data/render.h"
#include "core/eval/eval_set.h"
#include "core/eval/paired_bootstrap.h"
#include "core/eval/score.h"
#include "core/eval/validate.h"
#include "core/io/json_file.h"
#include "core/io/safetensors.h"
#include "core/pipeline/text_to_video.h"
#include "media/bytes_io.h"
#include "media/png.h"
#include "tools/flags.h"

namespace {

using linvideo::tools::Flags;
namespace data = linvideo::core::data;
namespace ev = linvideo::core::eval;
namespace lp = linvideo::core::pipeline;

constexpr char kUsage[] =
    "usage: linvideo-eval <command> [flags]\n"
    "  validate-detectors [--count N (1000)] [--seed S (0)] [--frames F (33)] [--height H (128)]\n"
    "                     [--width W (128)] [--blur R (0)] [--noise STD (0)]\n"
    "        detector accuracy per attribute on N ground-truth clips (optionally box-blurred\n"
    "        and with Gaussian noise); fails below 98%\n"
    "  run --model DIR --out DIR [--reference-model DIR] [--prompts seen|heldout|all (all)]\n"
    "      [--seeds K (1)] [--steps S] [--guidance G] [--shift S] [--sampler unipc|euler|fewstep]\n"
    "      [--frames F] [--height H] [--width W] [--batch B (4)] [--threads N] [--device cpu]\n"
    "        generate the fixed evaluation prompts x the first K fixed seeds, score them against\n"
    "        their prompts (and the reference model's videos), write eval.json, eval.md and\n"
    "        contact_sheet.png (ground truth | generated, first seed) to --out\n"
    "      [--save-videos] also write every video to --out/videos.safetensors (uint8, named\n"
    "        CASE/SEED), to serve as a later run's reference\n"
    "      [--reference-videos FILE] fidelity against a saved run's videos instead of\n"
    "        regenerating them with --reference-model (same prompts, seeds and size)\n"
    "  compare --baseline DIR --candidate DIR [--resamples N (10000)] [--out FILE]\n"
    "        paired bootstrap 95% intervals of candidate - baseline (same case and seed pairs)\n"
    "        for each adherence attribute, overall adherence, all-correct and consistency,\n"
    "        per prompt group; markdown to stdout (and FILE)\n"
    "  table --baseline DIR --rows NAME=DIR,NAME=DIR,... [--resamples N] [--out FILE]\n"
    "        one markdown row per run (the ablation table of docs/linvideo.md): overall adherence\n"
    "        seen / held-out with the paired bootstrap 95% interval of the difference to the\n"
    "        baseline, adherence per attribute (seen), all-correct, consistency, fidelity to the\n"
    "        reference (PSNR / SSIM), s/video and, for converted models, the training wall time\n"
    "        from their model_index.json lineage\n";

constexpr double kRequiredAccuracy = 0.98;

absl::Status ValidateDetectors(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(Flags flags, Flags::Parse(args, {"count", "seed", "frames", "height", "width",
                                                       "blur", "noise"}));
  LV_ASSIGN_OR_RETURN(int64_t count, flags.GetInt("count", 1000));
  LV_ASSIGN_OR_RETURN(int64_t seed, flags.GetInt("seed", 0));
  LV_ASSIGN_OR_RETURN(int64_t frames, flags.GetInt("frames", 33));
  LV_ASSIGN_OR_RETURN(int64_t height, flags.GetInt("height", 128));
  LV_ASSIGN_OR_RETURN(int64_t width, flags.GetInt("width", 128));
  ev::Perturbation perturbation;
  LV_ASSIGN_OR_RETURN(int64_t blur, flags.GetInt("blur", 0));
  LV_ASSIGN_OR_RETURN(perturbation.noise_std, flags.GetDouble("noise", 0));
  perturbation.blur_radius = static_cast<int>(blur);
  if (blur < 0 || blur > 8 || perturbation.noise_std < 0 || perturbation.noise_std > 128) {
    return absl::InvalidArgumentError("need --blur 0..8 and --noise 0..128");
  }
  if (count < 1 || frames < 1 || frames > 1024 || height < 32 || height > 4096 || width < 32 ||
      width > 4096) {
    return absl::InvalidArgumentError(
        "need --count >= 1, --frames 1..1024, --height and --width 32..4096");
  }
  const auto start = std::chrono::steady_clock::now();
  const ev::DetectorValidation v = ev::ValidateDetectors(
      static_cast<int>(count), static_cast<uint64_t>(seed), static_cast<int>(frames),
      static_cast<int>(height), static_cast<int>(width), {}, perturbation);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const ev::Adherence& a = v.accuracy;
  std::cout << absl::StrFormat(
      "detector accuracy on %d ground-truth clips (%dx%dx%d, seed %d, blur %d, noise %g):\n",
      v.clips, frames, height, width, seed, blur, perturbation.noise_std);
  bool ok = true;
  for (const auto& [name, value] :
       std::vector<std::pair<const char*, double>>{{"background", a.background},
                                                   {"colour", a.color},
                                                   {"shape", a.shape},
                                                   {"motion", a.motion},
                                                   {"size", a.size},
                                                   {"count", a.count},
                                                   {"all", a.all}}) {
    std::cout << absl::StrFormat("  %-10s %7.2f%%\n", name, 100 * value);
    if (std::string(name) != "all") ok = ok && value >= kRequiredAccuracy;
  }
  std::cout << absl::StrFormat("  (%.1f ms per clip)\n", 1000 * secs / std::max(1, v.clips));
  for (const std::string& f : v.failures) std::cout << "  miss: " << f << "\n";
  if (!ok) return absl::InternalError("a detector is below 98% accuracy on ground truth");
  return absl::OkStatus();
}

nlohmann::json ToJson(const ev::Adherence& a) {
  return {{"background", a.background},
          {"color", a.color},
          {"shape", a.shape},
          {"motion", a.motion},
          {"size", a.size},
          {"count", a.count},
          {"all", a.all},
          {"mean", a.Mean()}};
}
nlohmann::json ToJson(const ev::Consistency& c) {
  return {{"presence", c.presence},
          {"shape_stability", c.shape_stability},
          {"smoothness", c.smoothness},
          {"rms_jerk", c.rms_jerk},
          {"score", c.score}};
}
nlohmann::json ToJson(const ev::FrameQuality& q) {
  return {{"sharpness", q.sharpness},
          {"reference_sharpness", q.reference_sharpness},
          {"background_noise", q.background_noise},
          {"score", q.score}};
}
nlohmann::json ToJson(const ev::ScoreSummary& m, double seconds_per_video) {
  nlohmann::json j = {{"videos", m.videos},
                      {"adherence", ToJson(m.adherence)},
                      {"consistency", ToJson(m.consistency)},
                      {"quality", ToJson(m.quality)},
                      {"seconds_per_video", seconds_per_video}};
  if (m.fidelity_videos > 0) j["fidelity"] = {{"psnr", m.psnr}, {"ssim", m.ssim}};
  return j;
}

struct Result {
  const ev::EvalCase* c;
  uint64_t seed;
  double seconds;
  ev::VideoScore score;
};

std::string MarkdownRow(const std::string& label, const ev::ScoreSummary& m, double secs) {
  const ev::Adherence& a = m.adherence;
  std::string fid =
      m.fidelity_videos > 0 ? absl::StrFormat("%.2f | %.3f", m.psnr, m.ssim) : "- | -";
  return absl::StrFormat(
      "| %s | %d | %.0f%% | %.0f%% | %.0f%% | %.0f%% | %.0f%% | %.0f%% | %.0f%% | %.3f | %.3f | "
      "%s | %.2f |\n",
      label, m.videos, 100 * a.background, 100 * a.color, 100 * a.shape, 100 * a.motion,
      100 * a.size, 100 * a.count, 100 * a.all, m.consistency.score, m.quality.score, fid, secs);
}

// Four frames (first, 1/3, 2/3, last) of `video` appended to `out` ([F, H, W, 3] uint8).
void AppendKeyFrames(const torch::Tensor& video, std::vector<uint8_t>* out) {
  const int64_t f = video.size(0);
  const size_t bytes = static_cast<size_t>(video.size(1) * video.size(2) * 3);
  const uint8_t* p = video.data_ptr<uint8_t>();
  for (int64_t i : {int64_t{0}, (f - 1) / 3, 2 * (f - 1) / 3, f - 1}) {
    out->insert(out->end(), p + i * bytes, p + (i + 1) * bytes);
  }
}

absl::Status Run(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(
      Flags flags, Flags::Parse(args,
                                {"model", "reference-model", "reference-videos", "prompts", "seeds",
                                 "steps", "guidance", "shift", "sampler", "frames", "height",
                                 "width", "batch", "threads", "device", "out"},
                                {"save-videos"}));
  lp::PipelineOptions options;
  LV_ASSIGN_OR_RETURN(options.model_dir, flags.Required("model"));
  LV_ASSIGN_OR_RETURN(const std::string out_dir, flags.Required("out"));
  LV_ASSIGN_OR_RETURN(options.device.device,
                      linvideo::core::ParseDevice(flags.Get("device", "cpu")));
  LV_ASSIGN_OR_RETURN(int64_t threads, flags.GetInt("threads", 0));
  options.threads = static_cast<int>(threads);
  LV_ASSIGN_OR_RETURN(ev::PromptSet set, ev::ParsePromptSet(flags.Get("prompts", "all")));
  LV_ASSIGN_OR_RETURN(int64_t num_seeds, flags.GetInt("seeds", 1));
  LV_ASSIGN_OR_RETURN(int64_t batch, flags.GetInt("batch", 4));
  const auto& all_seeds = ev::EvalSeeds();
  if (num_seeds < 1 || num_seeds > static_cast<int64_t>(all_seeds.size()) || batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--seeds must be 1..", all_seeds.size(), " and --batch >= 1"));
  }
  lp::GenerationParams base;
  LV_ASSIGN_OR_RETURN(base.steps, flags.GetInt("steps", 0));
  LV_ASSIGN_OR_RETURN(base.guidance,
                      flags.GetDouble("guidance", linvideo::core::params::kUseDefault));
  LV_ASSIGN_OR_RETURN(base.shift, flags.GetDouble("shift", linvideo::core::params::kUseDefault));
  LV_ASSIGN_OR_RETURN(base.frames, flags.GetInt("frames", 0));
  LV_ASSIGN_OR_RETURN(base.height, flags.GetInt("height", 0));
  LV_ASSIGN_OR_RETURN(base.width, flags.GetInt("width", 0));
  if (flags.Has("sampler")) {  // unset: the model's declared sampler
    LV_ASSIGN_OR_RETURN(base.sampler,
                        linvideo::core::sampling::ParseSamplerKind(flags.Get("sampler")));
  }

  LV_ASSIGN_OR_RETURN(auto model, lp::TextToVideoPipeline::Create(options));
  std::unique_ptr<lp::TextToVideoPipeline> reference;
  if (flags.Has("reference-model")) {
    lp::PipelineOptions ref_options = options;
    ref_options.model_dir = flags.Get("reference-model");
    LV_ASSIGN_OR_RETURN(reference, lp::TextToVideoPipeline::Create(ref_options));
  }
  if (flags.Has("reference-model") && flags.Has("reference-videos")) {
    return absl::InvalidArgumentError("use --reference-model or --reference-videos, not both");
  }
  linvideo::core::io::TensorMap reference_videos, saved_videos;
  if (flags.Has("reference-videos")) {
    LV_ASSIGN_OR_RETURN(reference_videos,
                        linvideo::core::io::ReadSafetensors(flags.Get("reference-videos")));
  }
  const bool save_videos = flags.Switch("save-videos");
  const std::vector<ev::EvalCase> cases = ev::EvalCases(set);
  base.prompt = cases.front().prompt;  // Resolve checks the prompt too; each case sets its own
  LV_ASSIGN_OR_RETURN(const lp::GenerationParams resolved, model->Resolve(base));
  std::vector<Result> results;
  std::vector<uint8_t> sheet;  // ground truth | generated key frames, first seed
  for (int64_t s = 0; s < num_seeds; ++s) {
    for (size_t begin = 0; begin < cases.size(); begin += batch) {
      const size_t end = std::min(cases.size(), begin + static_cast<size_t>(batch));
      std::vector<lp::GenerationParams> params;
      for (size_t i = begin; i < end; ++i) {
        lp::GenerationParams p = resolved;
        p.prompt = cases[i].prompt;
        p.seed = all_seeds[s];
        params.push_back(p);
      }
      const auto start = std::chrono::steady_clock::now();
      LV_ASSIGN_OR_RETURN(std::vector<torch::Tensor> videos, model->Generate(params));
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
          params.size();
      std::vector<torch::Tensor> refs;
      if (reference) {
        LV_ASSIGN_OR_RETURN(refs, reference->Generate(params));
      }
      for (size_t i = begin; i < end; ++i) {
        const torch::Tensor& video = videos[i - begin];  // [F, H, W, 3] uint8
        const std::string key = absl::StrCat(cases[i].name, "/", all_seeds[s]);
        if (save_videos) saved_videos[key] = video.contiguous();
        const torch::Tensor* ref = reference ? &refs[i - begin] : nullptr;
        if (!reference_videos.empty()) {
          auto it = reference_videos.find(key);
          if (it == reference_videos.end()) {
            return absl::NotFoundError(absl::StrCat("--reference-videos has no video ", key,
                                                    " (saved with other prompts or seeds?)"));
          }
          if (!it->second.sizes().equals(video.sizes())) {
            return absl::InvalidArgumentError(
                absl::StrCat("--reference-videos ", key, " is ", c10::str(it->second.sizes()),
                             ", this run's is ", c10::str(video.sizes())));
          }
          ref = &it->second;
        }
        LV_ASSIGN_OR_RETURN(ev::VideoScore score, ev::ScoreVideo(video, cases[i].spec, ref));
        if (s == 0) {
          LV_ASSIGN_OR_RETURN(torch::Tensor truth, data::Render(cases[i].spec, video.size(0),
                                                                video.size(1), video.size(2)));
          AppendKeyFrames(truth, &sheet);
          AppendKeyFrames(video.contiguous(), &sheet);
        }
        results.push_back({&cases[i], all_seeds[s], secs, std::move(score)});
        std::cout << absl::StrFormat("[%zu/%zu] seed %d %-40s adherence %.2f%s (%.1f s)\n",
                                     results.size(), cases.size() * num_seeds, all_seeds[s],
                                     cases[i].name, results.back().score.adherence.Mean(),
                                     results.back().score.adherence.all == 1 ? " all" : "", secs)
                  << std::flush;  // progress reaches a redirected log as it happens
      }
    }
  }

  // Summaries per prompt group.
  nlohmann::json summary;
  std::string table =
      "| prompts | videos | background | colour | shape | motion | size | count | all | "
      "consistency | quality | PSNR | SSIM | s/video |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const char* group : {"seen", "heldout", "all"}) {
    std::vector<const ev::VideoScore*> scores;
    double secs = 0;
    for (const Result& r : results) {
      if (std::string(group) == "all" || r.c->held_out == (std::string(group) == "heldout")) {
        scores.push_back(&r.score);
        secs += r.seconds;
      }
    }
    if (scores.empty()) continue;
    const ev::ScoreSummary m = ev::Summarize(scores);
    summary[group] = ToJson(m, secs / scores.size());
    absl::StrAppend(&table, MarkdownRow(group, m, secs / scores.size()));
  }
  nlohmann::json videos = nlohmann::json::array();
  std::string per_video =
      "| video | seed | prompt | detected | adherence | all | consistency | quality |\n"
      "|---|---|---|---|---|---|---|---|\n";
  for (const Result& r : results) {
    nlohmann::json detected = nlohmann::json::array();
    std::string seen = absl::StrCat(data::Name(r.score.detection.background), " bg");
    for (const ev::DetectedObject& o : r.score.detection.objects) {
      detected.push_back({{"color", data::Name(o.color)},
                          {"shape", data::Name(o.shape)},
                          {"size", data::Name(o.size)},
                          {"motion", data::Name(o.motion)},
                          {"presence", o.presence}});
      absl::StrAppend(&seen, "; ", data::Name(o.size), " ", data::Name(o.color), " ",
                      data::Name(o.shape), " ", data::Name(o.motion));
    }
    nlohmann::json v = {
        {"case", r.c->name},
        {"prompt", r.c->prompt},
        {"held_out", r.c->held_out},
        {"seed", r.seed},
        {"seconds", r.seconds},
        {"background_detected",
         r.score.detection.background_known ? data::Name(r.score.detection.background) : "unknown"},
        {"objects_detected", detected},
        {"adherence", ToJson(r.score.adherence)},
        {"consistency", ToJson(r.score.consistency)},
        {"quality", ToJson(r.score.quality)}};
    if (r.score.has_fidelity) {
      v["fidelity"] = {{"psnr", r.score.fidelity.psnr},
                       {"ssim", r.score.fidelity.ssim},
                       {"frame_psnr", r.score.fidelity.frame_psnr},
                       {"frame_ssim", r.score.fidelity.frame_ssim}};
    }
    videos.push_back(v);
    absl::StrAppend(&per_video,
                    absl::StrFormat("| %s | %d | %s | %s | %.2f | %s | %.3f | %.3f |\n", r.c->name,
                                    r.seed, r.c->prompt, seen, r.score.adherence.Mean(),
                                    r.score.adherence.all == 1 ? "yes" : "no",
                                    r.score.consistency.score, r.score.quality.score));
  }
  nlohmann::json report = {
      {"model", options.model_dir},
      {"reference_model", flags.Get("reference-model")},
      {"reference_videos", flags.Get("reference-videos")},
      {"prompts", flags.Get("prompts", "all")},
      {"seeds", std::vector<uint64_t>(all_seeds.begin(), all_seeds.begin() + num_seeds)},
      {"steps", resolved.steps},
      {"guidance", resolved.guidance},
      {"shift", resolved.shift},
      {"sampler", linvideo::core::params::SamplerKindName(
                      resolved.sampler.value_or(linvideo::core::params::SamplerKind::kUniPC))},
      {"frames", resolved.frames},
      {"height", resolved.height},
      {"width", resolved.width},
      {"summary", summary},
      {"videos", videos}};

  std::filesystem::create_directories(out_dir);
  const std::filesystem::path out(out_dir);
  LV_RETURN_IF_ERROR(linvideo::media::SaveBytes((out / "eval.json").string(), report.dump(2)));
  if (save_videos) {
    LV_RETURN_IF_ERROR(
        linvideo::core::io::WriteSafetensors((out / "videos.safetensors").string(), saved_videos));
  }
  const std::string md = absl::StrCat(
      "# linvideo-eval: ", options.model_dir, "\n\n", resolved.steps, " steps, guidance ",
      resolved.guidance, ", shift ", resolved.shift, ", ", resolved.frames, "x", resolved.height,
      "x", resolved.width, ", ", num_seeds, " seed(s)",
      reference ? absl::StrCat(", reference ", flags.Get("reference-model")) : "",
      reference_videos.empty() ? ""
                               : absl::StrCat(", reference videos ", flags.Get("reference-videos")),
      "\n\n", table, "\n", per_video);
  LV_RETURN_IF_ERROR(linvideo::media::SaveBytes((out / "eval.md").string(), md));
  if (!results.empty()) {
    const int tiles = static_cast<int>(sheet.size() / (resolved.height * resolved.width * 3));
    linvideo::media::FrameView view{sheet.data(), tiles, static_cast<int>(resolved.height),
                                    static_cast<int>(resolved.width)};
    linvideo::media::ContactSheetOptions sheet_options;
    sheet_options.columns = 8;
    sheet_options.max_frames = std::min(1024, tiles);
    if (resolved.width > 128) sheet_options.tile_width = 128;
    LV_ASSIGN_OR_RETURN(std::string png, linvideo::media::ContactSheet(view, sheet_options));
    LV_RETURN_IF_ERROR(linvideo::media::SaveBytes((out / "contact_sheet.png").string(), png));
  }
  std::cout << "\n"
            << table << "\nwrote " << (out / "eval.json").string() << ", eval.md, "
            << "contact_sheet.png\n";
  return absl::OkStatus();
}

// One score of a video entry of eval.json by metric name.
double Metric(const nlohmann::json& v, const std::string& metric) {
  if (metric == "consistency") return v.at("consistency").at("score").get<double>();
  return v.at("adherence").at(metric).get<double>();
}

// An eval.json report.
absl::StatusOr<nlohmann::json> LoadReport(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "eval.json").string();
  LV_ASSIGN_OR_RETURN(nlohmann::json j, linvideo::core::io::ReadJsonFile(path));
  if (!j.contains("videos") || !j.contains("summary")) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a linvideo-eval report"));
  }
  return j;
}

// The candidate's videos of `group` (seen | heldout | all) paired with the baseline's video of the
// same case and seed; INVALID_ARGUMENT when the baseline lacks one.
using Pairs = std::vector<std::pair<const nlohmann::json*, const nlohmann::json*>>;
absl::StatusOr<Pairs> PairVideos(const nlohmann::json& base, const nlohmann::json& cand,
                                 const std::string& group) {
  std::map<std::string, const nlohmann::json*> by_key;
  for (const auto& v : base["videos"]) {
    by_key[absl::StrCat(v["case"].get<std::string>(), "/", v["seed"].get<uint64_t>())] = &v;
  }
  Pairs pairs;
  for (const auto& v : cand["videos"]) {
    const bool held = v["held_out"].get<bool>();
    if (group != "all" && held != (group == "heldout")) continue;
    const std::string key =
        absl::StrCat(v["case"].get<std::string>(), "/", v["seed"].get<uint64_t>());
    auto it = by_key.find(key);
    if (it == by_key.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the baseline has no video ", key,
                       ": compare runs made with the same prompts and seeds"));
    }
    pairs.emplace_back(&v, it->second);
  }
  return pairs;
}

// Paired bootstrap interval of candidate − baseline for one metric over `pairs`.
absl::StatusOr<ev::Interval> PairedDifference(const Pairs& pairs, const std::string& metric,
                                              int64_t resamples) {
  std::vector<double> a, b;
  for (const auto& [c, base] : pairs) {
    a.push_back(Metric(*c, metric));
    b.push_back(Metric(*base, metric));
  }
  return ev::PairedBootstrap(a, b, static_cast<int>(resamples));
}

absl::Status Compare(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(Flags flags,
                      Flags::Parse(args, {"baseline", "candidate", "resamples", "out"}));
  LV_ASSIGN_OR_RETURN(std::string base_dir, flags.Required("baseline"));
  LV_ASSIGN_OR_RETURN(std::string cand_dir, flags.Required("candidate"));
  LV_ASSIGN_OR_RETURN(int64_t resamples, flags.GetInt("resamples", 10000));
  LV_ASSIGN_OR_RETURN(nlohmann::json base, LoadReport(base_dir));
  LV_ASSIGN_OR_RETURN(nlohmann::json cand, LoadReport(cand_dir));
  const std::vector<std::string> metrics = {"background", "color", "shape", "motion",
                                            "size",       "mean",  "all",   "consistency"};
  std::string md = absl::StrCat("candidate ", cand_dir, " minus baseline ", base_dir,
                                ": paired bootstrap 95% intervals (", resamples,
                                " resamples), in points\n\n| group | pairs |");
  for (const auto& m : metrics) absl::StrAppend(&md, " ", m, " |");
  absl::StrAppend(&md, "\n|---|---|");
  for (size_t i = 0; i < metrics.size(); ++i) absl::StrAppend(&md, "---|");
  absl::StrAppend(&md, "\n");
  for (const char* group : {"seen", "heldout", "all"}) {
    LV_ASSIGN_OR_RETURN(Pairs pairs, PairVideos(base, cand, group));
    if (pairs.empty()) continue;
    absl::StrAppend(&md, "| ", group, " | ", pairs.size(), " |");
    for (const auto& m : metrics) {
      LV_ASSIGN_OR_RETURN(ev::Interval ci, PairedDifference(pairs, m, resamples));
      const double scale = m == "consistency" ? 1.0 : 100.0;
      absl::StrAppend(&md, absl::StrFormat(m == "consistency" ? " %+.3f [%+.3f, %+.3f] |"
                                                              : " %+.1f [%+.1f, %+.1f] |",
                                           scale * ci.mean, scale * ci.lo, scale * ci.hi));
    }
    absl::StrAppend(&md, "\n");
  }
  std::cout << md;
  if (flags.Has("out")) LV_RETURN_IF_ERROR(linvideo::media::SaveBytes(flags.Get("out"), md));
  return absl::OkStatus();
}

// Training wall time of a post-trained model from its lineage, or "—": a converted model's
// conversion time; a distilled model carries its base's conversion lineage beside its own, and
// its row shows both stages ("27 + 46 min": conversion + distillation).
std::string TrainingTime(const std::string& model_dir) {
  const std::string path = (std::filesystem::path(model_dir) / "model_index.json").string();
  auto index = linvideo::core::io::ReadJsonFile(path);
  if (!index.ok()) return "—";
  auto minutes = [&](const char* section) -> std::optional<double> {
    if (!index->contains(section) || !(*index)[section].is_object()) return std::nullopt;
    const auto& lineage = (*index)[section];
    if (!lineage.contains("train_seconds") || !lineage["train_seconds"].is_number()) {
      return std::nullopt;
    }
    return lineage["train_seconds"].get<double>() / 60.0;
  };
  const std::optional<double> convert = minutes("linvideo_conversion");
  const std::optional<double> distill = minutes("linvideo_distillation");
  if (convert && distill) return absl::StrFormat("%.0f + %.0f min", *convert, *distill);
  if (distill) return absl::StrFormat("%.0f min", *distill);
  if (convert) return absl::StrFormat("%.0f min", *convert);
  return "—";
}

absl::Status Table(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(Flags flags, Flags::Parse(args, {"baseline", "rows", "resamples", "out"}));
  LV_ASSIGN_OR_RETURN(std::string base_dir, flags.Required("baseline"));
  LV_ASSIGN_OR_RETURN(std::string rows_text, flags.Required("rows"));
  LV_ASSIGN_OR_RETURN(int64_t resamples, flags.GetInt("resamples", 10000));
  LV_ASSIGN_OR_RETURN(nlohmann::json base, LoadReport(base_dir));
  std::vector<std::pair<std::string, std::string>> rows;
  for (absl::string_view item : absl::StrSplit(rows_text, ',', absl::SkipEmpty())) {
    const size_t eq = item.find('=');
    if (eq == absl::string_view::npos || eq == 0 || eq + 1 == item.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--rows item '", item,
          "' is not NAME=DIR (e.g. --rows teacher=runs/t,auto=runs/a; items are separated by "
          "commas, so a NAME cannot contain one)"));
    }
    rows.emplace_back(std::string(item.substr(0, eq)), std::string(item.substr(eq + 1)));
  }
  const std::vector<std::string> attributes = {"background", "color", "shape", "motion", "size"};
  std::string md = absl::StrCat(
      "Differences to ", base_dir, " with paired bootstrap 95% intervals (", resamples,
      " resamples), in points; attributes, all-correct and fidelity on the seen prompts.\n\n"
      "| row | videos seen / held-out | adherence seen | vs baseline | adherence held-out | vs "
      "baseline |");
  for (const auto& a : attributes) absl::StrAppend(&md, " ", a, " |");
  absl::StrAppend(&md,
                  " all-correct | consistency | fidelity PSNR / SSIM | s/video | training |\n|");
  for (size_t i = 0; i < 11 + attributes.size(); ++i) absl::StrAppend(&md, "---|");
  absl::StrAppend(&md, "\n");
  for (const auto& [name, dir] : rows) {
    LV_ASSIGN_OR_RETURN(nlohmann::json cand, LoadReport(dir));
    const auto& summary = cand["summary"];
    absl::StrAppend(&md, "| ", name, " |");
    std::string counts, groups;
    for (const char* group : {"seen", "heldout"}) {
      LV_ASSIGN_OR_RETURN(Pairs pairs, PairVideos(base, cand, group));
      absl::StrAppend(&counts, counts.empty() ? "" : " / ", pairs.size());
      if (pairs.empty() || !summary.contains(group)) {
        absl::StrAppend(&groups, " — | — |");
        continue;
      }
      const double value = summary[group]["adherence"]["mean"].get<double>();
      absl::StrAppend(&groups, absl::StrFormat(" %.1f |", 100 * value));
      if (std::filesystem::equivalent(dir, base_dir)) {
        absl::StrAppend(&groups, " — |");
        continue;
      }
      LV_ASSIGN_OR_RETURN(ev::Interval ci, PairedDifference(pairs, "mean", resamples));
      absl::StrAppend(&groups, absl::StrFormat(" %+.1f [%+.1f, %+.1f] |", 100 * ci.mean,
                                               100 * ci.lo, 100 * ci.hi));
    }
    absl::StrAppend(&md, " ", counts, " |", groups);
    const auto& seen = summary.contains("seen") ? summary["seen"] : summary["all"];
    for (const auto& a : attributes) {
      absl::StrAppend(&md, absl::StrFormat(" %.0f |", 100 * seen["adherence"][a].get<double>()));
    }
    absl::StrAppend(&md,
                    absl::StrFormat(" %.0f | %.3f |", 100 * seen["adherence"]["all"].get<double>(),
                                    summary["all"]["consistency"]["score"].get<double>()));
    if (seen.contains("fidelity")) {
      absl::StrAppend(&md, absl::StrFormat(" %.2f / %.3f |", seen["fidelity"]["psnr"].get<double>(),
                                           seen["fidelity"]["ssim"].get<double>()));
    } else {
      absl::StrAppend(&md, " — |");
    }
    absl::StrAppend(
        &md, absl::StrFormat(" %.2f | %s |\n", summary["all"]["seconds_per_video"].get<double>(),
                             TrainingTime(cand["model"].get<std::string>())));
  }
  std::cout << md;
  if (flags.Has("out")) LV_RETURN_IF_ERROR(linvideo::media::SaveBytes(flags.Get("out"), md));
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  linvideo::core::InitRuntime();
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  absl::Status status;
  if (command == "validate-detectors") {
    status = ValidateDetectors(args);
  } else if (command == "run") {
    status = Run(args);
  } else if (command == "compare") {
    status = Compare(args);
  } else if (command == "table") {
    status = Table(args);
  } else {
    std::cerr << "unknown command '" << command << "'\n" << kUsage;
    return 2;
  }
  if (!status.ok()) {
    std::cerr << "linvideo-eval " << command << ": " << status.message() << "\n";
    return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}

#include "server/job_stages.h"

#include <string.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/io/json_file.h"

namespace linvideo::server {

namespace fs = std::filesystem;
using json = nlohmann::json;

// The quality gate's evals (when the spec has a gate) and the publish stage.
static void AddGateAndPublish(const JobSnapshot& job, const JobManagerOptions& o,
                              const std::string& dir, std::vector<Stage>& stages);
static std::vector<std::string> DataParallel(const JobManagerOptions& o,
                                             std::vector<std::string> argv);

std::vector<Stage> JobStages(const JobSnapshot& job, const JobManagerOptions& o,
                             const std::string& dir) {
  const ConvertJobOptions& c = job.spec.convert;
  const DistillJobOptions& d = job.spec.distill;
  const bool distill = job.spec.kind == JobKind::kDistill;
  const std::string threads = absl::StrCat(o.threads);
  auto opt = [](std::vector<std::string>& argv, const char* flag, auto value, bool set) {
    if (set) {
      argv.push_back(flag);
      argv.push_back(absl::StrCat(value));
    }
  };
  std::vector<Stage> stages;
  Stage traj{"trajectories",
             false,
             {o.train_binary, "trajectories"},
             dir + "/trajectories/progress.json",
             0.2};
  std::vector<std::string>& t = traj.argv;
  // A distillation reads only the prompts' embeddings from its trajectories (of the base).
  const int64_t videos = distill ? d.trajectories : c.trajectories;
  const int64_t video_steps = distill ? d.trajectory_steps : c.trajectory_steps;
  const uint64_t seed = distill ? d.seed : c.seed;
  t.insert(t.end(), {"--model", job.base_dir, "--out", dir + "/trajectories", "--threads", threads,
                     "--device", o.device, "--seed", absl::StrCat(seed)});
  opt(t, "--videos", videos, videos > 0);
  opt(t, "--steps", video_steps, video_steps > 0);
  opt(t, "--batch", std::min<int64_t>(std::max<int64_t>(videos, 1), 8), videos > 0);
  opt(t, "--shard-videos", std::max<int64_t>(videos, 1), videos > 0 && videos < 32);
  stages.push_back(traj);

  if (distill) {
    Stage dist{"distill", false, {o.train_binary, "distill"}, dir + "/distill/progress.json", 0.6};
    std::vector<std::string>& a = dist.argv;
    a.insert(a.end(), {"--base", job.base_dir, "--cache", dir + "/trajectories", "--work",
                       dir + "/distill", "--out", dir + "/output", "--threads", threads, "--device",
                       o.device, "--seed", absl::StrCat(d.seed)});
    opt(a, "--timesteps", absl::StrJoin(d.timesteps, ","), !d.timesteps.empty());
    opt(a, "--steps", d.steps, d.steps > 0);
    opt(a, "--fake-updates", d.fake_updates, d.fake_updates > 0);
    opt(a, "--real-guidance", absl::StrFormat("%.17g", d.real_guidance), d.real_guidance > 0);
    opt(a, "--real", job.real_dir, !job.real_dir.empty());
    opt(a, "--lr", absl::StrFormat("%.17g", d.lr), d.lr > 0);
    opt(a, "--fake-lr", absl::StrFormat("%.17g", d.fake_lr), d.fake_lr > 0);
    opt(a, "--batch", d.batch, d.batch > 0);
    opt(a, "--checkpoint-every", d.checkpoint_every, d.checkpoint_every > 0);
    a.insert(a.end(), {"--log-every",
                       absl::StrCat(std::max<int64_t>(1, (d.steps > 0 ? d.steps : 400) / 100))});
    dist.argv = DataParallel(o, dist.argv);
    stages.push_back(dist);
    AddGateAndPublish(job, o, dir, stages);
    return stages;
  }

  Stage conv{"convert", false, {o.train_binary, "convert"}, dir + "/convert/progress.json", 0.6};
  std::vector<std::string>& a = conv.argv;
  a.insert(a.end(),
           {"--base", job.base_dir, "--cache", dir + "/trajectories", "--work", dir + "/convert",
            "--out", dir + "/output", "--linear-layers", absl::StrCat(c.linear_layers), "--threads",
            threads, "--device", o.device, "--seed", absl::StrCat(c.seed)});
  opt(a, "--select", c.select, !c.select.empty());
  opt(a, "--pinned", c.pinned, !c.pinned.empty());
  opt(a, "--objective", c.objective, !c.objective.empty());
  opt(a, "--steps", c.steps, c.steps > 0);
  opt(a, "--lr", absl::StrFormat("%.17g", c.lr), c.lr > 0);
  opt(a, "--batch", c.batch, c.batch > 0);
  opt(a, "--checkpoint-every", c.checkpoint_every, c.checkpoint_every > 0);
  // progress.json is written at every log step: ~100 updates per run.
  a.insert(a.end(), {"--log-every",
                     absl::StrCat(std::max<int64_t>(1, (c.steps > 0 ? c.steps : 400) / 100))});
  conv.argv = DataParallel(o, conv.argv);
  stages.push_back(conv);
  AddGateAndPublish(job, o, dir, stages);
  return stages;
}

// A training stage's argv as `processes` data-parallel ranks (linvideo-train launch).
static std::vector<std::string> DataParallel(const JobManagerOptions& o,
                                             std::vector<std::string> argv) {
  if (o.processes <= 1) return argv;
  std::vector<std::string> out = {argv[0], "launch", "--nproc", absl::StrCat(o.processes), "--"};
  out.insert(out.end(), argv.begin() + 1, argv.end());
  return out;
}

static void AddGateAndPublish(const JobSnapshot& job, const JobManagerOptions& o,
                              const std::string& dir, std::vector<Stage>& stages) {
  const std::string threads = absl::StrCat(o.threads);
  auto opt = [](std::vector<std::string>& argv, const char* flag, auto value, bool set) {
    if (set) {
      argv.push_back(flag);
      argv.push_back(absl::StrCat(value));
    }
  };
  const QualityGateSpec& g = job.spec.gate;
  if (g.enabled()) {
    auto eval = [&](const std::string& name, const std::string& model, const std::string& out) {
      Stage s{name, true, {o.eval_binary, "run"}, "", 0.075};
      s.argv.insert(s.argv.end(), {"--model", model, "--out", out, "--prompts", g.prompts,
                                   "--seeds", absl::StrCat(std::max<int64_t>(g.seeds, 1)),
                                   "--threads", threads, "--device", o.device});
      opt(s.argv, "--steps", g.steps, g.steps > 0);
      return s;
    };
    Stage base = eval("gate-base", job.base_dir, dir + "/gate/base");
    base.argv.push_back("--save-videos");
    stages.push_back(base);
    Stage out = eval("gate-output", dir + "/output", dir + "/gate/output");
    if (job.spec.kind == JobKind::kDistill) {  // a distilled model samples its own steps only
      out.argv = {o.eval_binary, "run",
                  "--model",     dir + "/output",
                  "--out",       dir + "/gate/output",
                  "--prompts",   g.prompts,
                  "--seeds",     absl::StrCat(std::max<int64_t>(g.seeds, 1)),
                  "--threads",   threads,
                  "--device",    o.device};
    }
    out.argv.insert(out.argv.end(), {"--reference-videos", dir + "/gate/base/videos.safetensors"});
    stages.push_back(out);
  }
  stages.push_back(Stage{"publish", true, {}, "", g.enabled() ? 0.05 : 0.2});
}

int64_t DirBytes(const std::string& dir) {
  int64_t bytes = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_regular_file(ec)) bytes += static_cast<int64_t>(it->file_size(ec));
  }
  return bytes;
}

std::string TailLines(const std::string& file, int lines) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff from = std::max<std::streamoff>(0, size - 8192);
  in.seekg(from);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> all = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  if (from > 0 && !all.empty()) all.erase(all.begin());  // a partial first line
  const size_t n = std::min<size_t>(all.size(), lines);
  return absl::StrJoin(all.end() - n, all.end(), "\n");
}

std::string SignalName(int sig) {
  const char* name = strsignal(sig);
  return absl::StrCat(sig, name != nullptr ? absl::StrCat(" (", name, ")") : "");
}

absl::StatusOr<std::map<std::string, double>> GateScores(const std::string& eval_json) {
  absl::StatusOr<json> j = core::io::ReadJsonFile(eval_json);
  if (!j.ok()) return j.status();
  try {
    const json& all = j->at("summary").at("all");
    std::map<std::string, double> s = {
        {"adherence", all.at("adherence").at("mean").get<double>()},
        {"all_correct", all.at("adherence").at("all").get<double>()},
        {"consistency", all.at("consistency").at("score").get<double>()},
        {"quality", all.at("quality").at("score").get<double>()}};
    if (all.contains("fidelity")) s["psnr"] = all["fidelity"].at("psnr").get<double>();
    return s;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(eval_json, ": ", e.what()));
  }
}

absl::StatusOr<int64_t> ReadDitLayerCount(const std::string& model_dir) {
  const std::string file = (fs::path(model_dir) / "transformer" / "config.json").string();
  absl::StatusOr<json> j = core::io::ReadJsonFile(file);
  if (!j.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "base folder ", model_dir, " has no readable DiT config: ", j.status().message()));
  }
  const int64_t layers = j->value("num_layers", int64_t{0});
  if (layers < 1) return absl::InvalidArgumentError(absl::StrCat(file, ": no num_layers"));
  return layers;
}

namespace {

absl::StatusOr<json> ReadFolderJson(const std::string& dir, const std::string& rel,
                                    const std::string& what) {
  absl::StatusOr<json> j = core::io::ReadJsonFile((fs::path(dir) / rel).string());
  if (!j.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " does not load: ", j.status().message()));
  }
  return j;
}

}  // namespace

absl::Status CheckConvertOutput(const std::string& output_dir, const ConvertJobOptions& c) {
  absl::StatusOr<json> config =
      ReadFolderJson(output_dir, "transformer/config.json", "the conversion's output");
  if (!config.ok()) return config.status();
  int64_t linear = 0, hybrid = 0;
  for (const json& k : config->value("attention_kinds", json::array())) {
    linear += k == "linear";
    hybrid += k == "hybrid";
  }
  if (linear != c.linear_layers || hybrid != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("the output has %d linear and %d hybrid layers; the spec asked for "
                        "exactly %d linear and no hybrid layer",
                        linear, hybrid, c.linear_layers));
  }
  return absl::OkStatus();
}

absl::Status CheckDistillOutput(const std::string& output_dir, const std::string& base_dir) {
  absl::StatusOr<json> config =
      ReadFolderJson(output_dir, "transformer/config.json", "the distillation's output");
  if (!config.ok()) return config.status();
  absl::StatusOr<json> base = ReadFolderJson(base_dir, "transformer/config.json", "the base");
  if (!base.ok()) return base.status();
  const json kinds = config->value("attention_kinds", json::array());
  if (kinds != base->value("attention_kinds", json::array())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the distilled output's attention kinds ", kinds.dump(), " differ from the base's ",
        base->value("attention_kinds", json::array()).dump()));
  }
  absl::StatusOr<json> index =
      ReadFolderJson(output_dir, "model_index.json", "the distilled output's model_index.json");
  if (!index.ok()) return index.status();
  const json serving = index->value("linvideo", json::object());
  if (!serving.is_object() || serving.value("sampler", std::string()) != "fewstep" ||
      !serving.contains("timesteps") || !serving["timesteps"].is_array() ||
      serving["timesteps"].empty()) {
    return absl::FailedPreconditionError(
        "the distilled output does not declare its sampler (model_index.json \"linvideo\": "
        "\"sampler\": \"fewstep\" and a timestep list)");
  }
  return absl::OkStatus();
}

absl::Status CheckDistillBase(const std::string& base_dir, const std::string& base_name) {
  absl::StatusOr<json> index =
      core::io::ReadJsonFile((fs::path(base_dir) / "model_index.json").string());
  if (!index.ok() || !index->is_object()) return absl::OkStatus();  // no serving section
  const json serving = index->value("linvideo", json::object());
  if (serving.is_object() && serving.contains("timesteps")) {
    return absl::InvalidArgumentError(
        absl::StrCat("base '", base_name, "' is already a distilled few-step model (timesteps ",
                     serving["timesteps"].dump(), "); distil the converted model it came from"));
  }
  return absl::OkStatus();
}

absl::Status CheckDistillReal(const std::string& base_dir, const std::string& base_name,
                              const std::string& real_dir, const std::string& real_name) {
  absl::StatusOr<json> index =
      core::io::ReadJsonFile((fs::path(base_dir) / "model_index.json").string());
  if (!index.ok() || !index->is_object() || !index->contains("linvideo_conversion")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "distill.real '", real_name, "': the base '", base_name,
        "' records no conversion (model_index.json has no linvideo_conversion), so its real "
        "score can only be itself; leave distill.real empty"));
  }
  absl::StatusOr<json> base = ReadFolderJson(base_dir, "transformer/config.json", "the base");
  if (!base.ok()) return base.status();
  absl::StatusOr<json> real = ReadFolderJson(real_dir, "transformer/config.json",
                                             absl::StrCat("distill.real '", real_name, "'"));
  if (!real.ok()) return absl::InvalidArgumentError(real.status().message());
  for (const char* dim :
       {"dim", "num_layers", "num_heads", "ffn_dim", "in_dim", "out_dim", "text_dim", "freq_dim"}) {
    if (base->value(dim, json()) != real->value(dim, json())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "distill.real '", real_name, "' is not the teacher the base '", base_name,
          "' was converted from: its DiT ", dim, " is ", real->value(dim, json()).dump(),
          ", the base's ", base->value(dim, json()).dump()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> LayerList(const std::string& what, const std::string& text,
                                               int64_t layers) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int64_t v = -1;
    if (!absl::SimpleAtoi(part, &v) || v < 0 || v >= layers) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " '", text, "': '", part,
                       "' is not a layer index; the base has layers 0..", layers - 1));
    }
    if (std::find(out.begin(), out.end(), v) != out.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " '", text, "' lists layer ", v, " twice; name each layer once"));
    }
    out.push_back(v);
  }
  return out;
}

}  // namespace linvideo::server

#include "core/posttrain/trajectory_cache.h"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/common/status.h"
#include "core/data/sampler.h"
#include "core/io/json_file.h"
#include "core/io/sha256.h"
#include "core/pipeline/model_folder.h"
#include "core/pipeline/text_to_video.h"
#include "core/train/train_state.h"

namespace linvideo::core::posttrain {
namespace fs = std::filesystem;

namespace {

constexpr char kFormat[] = "linvideo-trajectories-v1";
constexpr uint64_t kPromptStream = 101, kNoiseStream = 102;

std::string ShardName(int64_t index) { return absl::StrFormat("shard-%05d", index); }

std::string ManifestPath(const std::string& dir) {
  return (fs::path(dir) / "manifest.json").string();
}

absl::Status Validate(const TrajectoryCacheOptions& o) {
  auto bad = [](auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  if (o.model_dir.empty() || o.out_dir.empty()) {
    return bad("the trajectory cache needs a teacher model folder and an output directory");
  }
  if (o.videos < 1) return bad("videos must be >= 1, got ", o.videos);
  if (o.batch < 1) return bad("batch must be >= 1, got ", o.batch);
  if (o.shard_videos < 1) return bad("shard_videos must be >= 1, got ", o.shard_videos);
  if (o.storage != c10::kBFloat16 && o.storage != c10::kFloat) {
    return bad("the storage dtype must be bf16 or fp32");
  }
  return absl::OkStatus();
}

// The settings a cache was made with: a rerun must match them to resume.
nlohmann::json Settings(const TrajectoryCacheOptions& o, const params::GenerationParams& p,
                        const std::string& sha) {
  return {{"base_weights_sha256", sha},
          {"videos", o.videos},
          {"shard_videos", o.shard_videos},
          {"batch", o.batch},
          {"seed", o.seed},
          {"storage", o.storage == c10::kBFloat16 ? "bf16" : "fp32"},
          {"width", p.width},
          {"height", p.height},
          {"frames", p.frames},
          {"steps", p.steps},
          {"guidance", p.guidance},
          {"shift", p.shift},
          {"sampler", params::SamplerKindName(p.sampler.value_or(params::SamplerKind::kUniPC))},
          {"negative_prompt", p.negative_prompt}};
}

}  // namespace

absl::StatusOr<std::string> TransformerWeightsSha256(const std::string& model_dir) {
  LV_ASSIGN_OR_RETURN(pipeline::ModelFolder folder, pipeline::ResolveModelFolder(model_dir));
  if (!folder.transformer) {
    return absl::NotFoundError(absl::StrCat(model_dir, " has no transformer component"));
  }
  std::vector<std::string> files;
  const std::string& stem = folder.transformer->weights_stem;
  for (const auto& entry : fs::directory_iterator(folder.transformer->dir)) {
    const std::string name = entry.path().filename().string();
    if (name.size() < 12 || name.substr(name.size() - 12) != ".safetensors") continue;
    if (!stem.empty() && name.rfind(stem, 0) != 0) continue;
    files.push_back(name);
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    return absl::NotFoundError(absl::StrCat("no transformer weights in ", folder.transformer->dir));
  }
  return io::Sha256Files(folder.transformer->dir, files);
}

absl::StatusOr<TrajectoryCacheSummary> BuildTrajectoryCache(
    const TrajectoryCacheOptions& o, const std::function<void(const std::string&)>& log) {
  LV_RETURN_IF_ERROR(Validate(o));
  const auto start = std::chrono::steady_clock::now();
  auto say = [&](const std::string& line) {
    if (log) log(line);
  };
  LV_ASSIGN_OR_RETURN(std::string sha, TransformerWeightsSha256(o.model_dir));
  pipeline::PipelineOptions popts;
  popts.model_dir = o.model_dir;
  popts.device = o.device;
  popts.threads = at::get_num_threads();
  LV_ASSIGN_OR_RETURN(auto pipe, pipeline::TextToVideoPipeline::Create(popts));
  params::GenerationParams request = o.generation;
  request.prompt = "x";  // placeholder: Resolve checks a prompt exists; each video draws its own
  LV_ASSIGN_OR_RETURN(params::GenerationParams resolved, pipe->Resolve(request));
  const bool guided = params::UsesCfg(resolved);

  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", o.out_dir, ": ", ec.message()));
  const nlohmann::json settings = Settings(o, resolved, sha);
  nlohmann::json manifest;
  if (fs::exists(ManifestPath(o.out_dir))) {
    LV_ASSIGN_OR_RETURN(manifest, io::ReadJsonFile(ManifestPath(o.out_dir)));
    if (manifest.value("format", "") != kFormat || manifest["settings"] != settings) {
      return absl::FailedPreconditionError(
          absl::StrCat(o.out_dir, " holds a trajectory cache made with other settings (",
                       manifest.value("settings", nlohmann::json()).dump(), "; now ",
                       settings.dump(), "): use another directory or delete it"));
    }
  } else {
    LV_ASSIGN_OR_RETURN(auto folder, pipeline::ResolveModelFolder(o.model_dir));
    LV_ASSIGN_OR_RETURN(auto schedule, sampling::MakeFlowSchedule(resolved.steps, resolved.shift));
    const params::LatentShape shape = params::LatentShapeOf(resolved, pipe->limits().geometry);
    std::vector<std::string> prompts;
    for (int64_t v = 0; v < o.videos; ++v) {
      prompts.push_back(
          data::SampleExample(train::MixSeed(o.seed, v, kPromptStream), data::Split::kTrain)
              .prompt);
    }
    manifest = {{"format", kFormat},
                {"settings", settings},
                {"base_model", fs::absolute(folder.root).lexically_normal().string()},
                {"guided", guided},
                {"sigmas", schedule.sigmas},
                {"timesteps", schedule.timesteps},
                {"latent_shape", {shape.channels, shape.frames, shape.height, shape.width}},
                {"prompts", prompts},
                {"shards", nlohmann::json::array()},
                {"bytes", 0}};
    LV_RETURN_IF_ERROR(io::WriteJsonFile(ManifestPath(o.out_dir), manifest));
  }
  // The negative prompt's embedding, encoded once: every video's uncond branch uses it.
  torch::Tensor neg;
  if (guided) {
    LV_ASSIGN_OR_RETURN(auto negs, pipe->EncodeText({resolved.negative_prompt}));
    neg = negs[0];
    LV_RETURN_IF_ERROR(io::WriteSafetensors((fs::path(o.out_dir) / "negative.safetensors").string(),
                                            {{"context", neg}}));
  }

  TrajectoryCacheSummary summary;
  summary.videos = o.videos;
  summary.shards = (o.videos + o.shard_videos - 1) / o.shard_videos;
  const std::vector<std::string> prompts = manifest["prompts"].get<std::vector<std::string>>();
  int64_t done_videos = 0;
  for (int64_t s = static_cast<int64_t>(manifest["shards"].size()); s < summary.shards; ++s) {
    if (o.stop_after_shards > 0 && summary.shards_written >= o.stop_after_shards) break;
    const int64_t first = s * o.shard_videos;
    const int64_t count = std::min(o.shard_videos, o.videos - first);
    std::vector<torch::Tensor> xs, ucs, uus, x0s, contexts;
    for (int64_t begin = first; begin < first + count; begin += o.batch) {
      const int64_t end = std::min(first + count, begin + o.batch);
      std::vector<std::string> texts(prompts.begin() + begin, prompts.begin() + end);
      LV_ASSIGN_OR_RETURN(std::vector<torch::Tensor> cond, pipe->EncodeText(texts));
      std::vector<std::unique_ptr<pipeline::RequestState>> states;
      std::vector<pipeline::RequestState*> batch;
      for (int64_t v = begin; v < end; ++v) {
        params::GenerationParams p = resolved;
        p.prompt = prompts[v];
        p.seed = train::MixSeed(o.seed, v, kNoiseStream);
        LV_ASSIGN_OR_RETURN(auto state, pipe->InitRequest(p, cond[v - begin], neg));
        state->keep_branch_velocities = true;
        batch.push_back(state.get());
        states.push_back(std::move(state));
      }
      const int64_t steps = batch[0]->total_steps();
      std::vector<std::vector<torch::Tensor>> x(batch.size()), uc(batch.size()), uu(batch.size());
      while (!batch[0]->done()) {
        for (size_t i = 0; i < batch.size(); ++i) x[i].push_back(batch[i]->latents.to(o.storage));
        LV_RETURN_IF_ERROR(pipe->Step(batch));
        for (size_t i = 0; i < batch.size(); ++i) {
          uc[i].push_back(batch[i]->cond_velocity.to(o.storage));
          if (guided) uu[i].push_back(batch[i]->uncond_velocity.to(o.storage));
        }
      }
      for (size_t i = 0; i < batch.size(); ++i) {
        xs.push_back(torch::stack(x[i]));
        ucs.push_back(torch::stack(uc[i]));
        if (guided) uus.push_back(torch::stack(uu[i]));
        x0s.push_back(batch[i]->latents.to(torch::kFloat).cpu());
        contexts.push_back(cond[i].to(torch::kFloat).cpu());
      }
      done_videos += end - begin;
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      say(absl::StrFormat("shard %d/%d: videos %d-%d of %d sampled (%d steps each, %.2f s/video)",
                          s + 1, summary.shards, begin, end - 1, o.videos, steps,
                          secs / done_videos));
      const int64_t written = end;  // videos sampled so far, this run's and earlier shards'
      LV_RETURN_IF_ERROR(io::WriteJsonFile(
          (fs::path(o.out_dir) / "progress.json").string(),
          {{"stage", "trajectories"},
           {"step", written},
           {"total", o.videos},
           {"eta_s",
            secs / static_cast<double>(done_videos) * static_cast<double>(o.videos - written)}}));
    }
    io::TensorMap tensors = {{"x", torch::stack(xs).cpu()},
                             {"u_cond", torch::stack(ucs).cpu()},
                             {"x0", torch::stack(x0s)},
                             {"context", torch::stack(contexts)}};
    if (guided) tensors["u_uncond"] = torch::stack(uus).cpu();
    const std::string file = ShardName(s) + ".safetensors";
    LV_RETURN_IF_ERROR(io::WriteSafetensors((fs::path(o.out_dir) / file).string(), tensors));
    const int64_t bytes = static_cast<int64_t>(fs::file_size(fs::path(o.out_dir) / file));
    manifest["shards"].push_back(
        {{"file", file}, {"first_video", first}, {"videos", count}, {"bytes", bytes}});
    manifest["bytes"] = manifest["bytes"].get<int64_t>() + bytes;
    LV_RETURN_IF_ERROR(io::WriteJsonFile(ManifestPath(o.out_dir), manifest));
    ++summary.shards_written;
  }
  summary.bytes = manifest["bytes"].get<int64_t>();
  summary.complete = static_cast<int64_t>(manifest["shards"].size()) == summary.shards;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

absl::StatusOr<std::unique_ptr<TrajectoryCache>> TrajectoryCache::Open(const std::string& dir) {
  const std::string path = ManifestPath(dir);
  if (!fs::exists(path)) {
    return absl::NotFoundError(absl::StrCat(dir,
                                            " is not a trajectory cache (no manifest.json); "
                                            "make one with `linvideo-train trajectories`"));
  }
  LV_ASSIGN_OR_RETURN(nlohmann::json m, io::ReadJsonFile(path));
  if (m.value("format", "") != kFormat) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a ", kFormat, " manifest"));
  }
  std::unique_ptr<TrajectoryCache> cache(new TrajectoryCache());
  cache->videos_ = m["settings"]["videos"].get<int64_t>();
  const int64_t shard_videos = m["settings"]["shard_videos"].get<int64_t>();
  const int64_t shards = (cache->videos_ + shard_videos - 1) / shard_videos;
  if (static_cast<int64_t>(m["shards"].size()) != shards) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir, " is incomplete (", m["shards"].size(), " of ", shards,
        " shards): rerun `linvideo-train trajectories` with the same flags to finish it"));
  }
  cache->guided_ = m["guided"].get<bool>();
  cache->guidance_ = m["settings"]["guidance"].get<double>();
  cache->sigmas_ = m["sigmas"].get<std::vector<double>>();
  cache->timesteps_ = m["timesteps"].get<std::vector<int64_t>>();
  cache->latent_shape_ = m["latent_shape"].get<std::vector<int64_t>>();
  cache->base_model_ = m["base_model"].get<std::string>();
  cache->base_sha_ = m["settings"]["base_weights_sha256"].get<std::string>();
  cache->prompts_ = m["prompts"].get<std::vector<std::string>>();
  LV_ASSIGN_OR_RETURN(cache->manifest_sha_, io::Sha256File(path));
  for (const auto& entry : m["shards"]) {
    Shard shard;
    shard.first = entry["first_video"].get<int64_t>();
    shard.count = entry["videos"].get<int64_t>();
    LV_ASSIGN_OR_RETURN(
        shard.tensors,
        io::ReadSafetensors((fs::path(dir) / entry["file"].get<std::string>()).string()));
    for (const char* name : {"x", "u_cond", "x0", "context"}) {
      if (!shard.tensors.count(name)) {
        return absl::DataLossError(absl::StrCat(entry["file"].get<std::string>(), " lacks ", name));
      }
    }
    if (cache->guided_ && !shard.tensors.count("u_uncond")) {
      return absl::DataLossError(absl::StrCat(entry["file"].get<std::string>(), " lacks u_uncond"));
    }
    cache->shards_.push_back(std::move(shard));
  }
  if (cache->guided_) {
    LV_ASSIGN_OR_RETURN(io::TensorMap neg,
                        io::ReadSafetensors((fs::path(dir) / "negative.safetensors").string()));
    cache->negative_ = neg.at("context").to(torch::kFloat).clone();
  }
  return cache;
}

const TrajectoryCache::Shard& TrajectoryCache::ShardOf(int64_t video) const {
  for (const Shard& s : shards_) {
    if (video >= s.first && video < s.first + s.count) return s;
  }
  TORCH_CHECK(false, "video ", video, " is not in the trajectory cache (", videos_, " videos)");
}

TrajectoryCache::Point TrajectoryCache::Get(int64_t video, int64_t step) const {
  TORCH_CHECK(step >= 0 && step < steps(), "step ", step, " is not in [0, ", steps(), ")");
  const Shard& s = ShardOf(video);
  const int64_t i = video - s.first;
  Point p;
  p.x = s.tensors.at("x")[i][step].to(torch::kFloat);
  p.u_cond = s.tensors.at("u_cond")[i][step].to(torch::kFloat);
  if (guided_) p.u_uncond = s.tensors.at("u_uncond")[i][step].to(torch::kFloat);
  p.context = s.tensors.at("context")[i].to(torch::kFloat);
  return p;
}

torch::Tensor TrajectoryCache::FinalSample(int64_t video) const {
  const Shard& s = ShardOf(video);
  return s.tensors.at("x0")[video - s.first].to(torch::kFloat);
}

}  // namespace linvideo::core::posttrain

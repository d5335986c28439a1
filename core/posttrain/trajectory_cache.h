#pragma once
// The data-free training set of LinVideo: the teacher's own sampling trajectories. Prompts drawn
// from the shapes-world grammar (training split) and seeded noise go through the teacher's sampler
// exactly as the server runs it (same schedule, solver and guidance); every step's input x_t and
// the teacher's two branch velocities (prompt and negative prompt, before guidance combines them)
// are recorded with the prompt's text embedding.
//
// On disk (`out_dir`):
//   manifest.json              settings, the base model's weights hash, the schedule, prompts,
//                              and the shards written so far (each with its byte size)
//   shard-00000.safetensors    videos [first, first + n) of the run:
//     x         [n, S, C, F', h, w]  x_t at the start of step i (storage dtype)
//     u_cond    [n, S, C, F', h, w]  teacher velocity with the prompt at (x_t, t_i)
//     u_uncond  [n, S, C, F', h, w]  with the negative prompt (only with guidance)
//     x0        [n, C, F', h, w]     the teacher's final sample (fp32)
//     context   [n, text_len, text_dim]  the prompt's embedding (fp32)
//   negative.safetensors       context [text_len, text_dim] of the negative prompt (fp32)
//
// Resumable: shards are written atomically and listed in the manifest after they land; a rerun
// with the same settings skips the listed shards and makes the rest. Video v's prompt and noise
// come from (seed, v) and batches never straddle shards, so a resumed cache is byte-identical to
// an uninterrupted one (same thread count). Not thread-safe; one writer per directory.

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/runtime.h"
#include "core/io/safetensors.h"
#include "core/params/generation_params.h"

namespace linvideo::core::posttrain {

struct TrajectoryCacheOptions {
  std::string model_dir;  // the teacher: any Wan model folder the pipeline loads
  std::string out_dir;
  int64_t videos = 256;
  int64_t batch = 8;          // videos sampled as one DiT batch
  int64_t shard_videos = 32;  // videos per shard file
  uint64_t seed = 0;
  // Size, steps, guidance, shift and sampler; zero / kUseDefault take the model's serving defaults.
  // The prompt is ignored (drawn per video); an empty negative prompt is the model's default.
  params::GenerationParams generation;
  c10::ScalarType storage = c10::kBFloat16;  // x and the velocities: kBFloat16 or kFloat
  DeviceOptions device;
  int64_t stop_after_shards = 0;  // > 0: return after writing this many new shards (tests, resume)
};

struct TrajectoryCacheSummary {
  int64_t videos = 0, shards = 0;
  int64_t shards_written = 0;  // by this call (the rest were already there)
  int64_t bytes = 0;           // all shards on disk
  double seconds = 0;          // this call
  bool complete = false;
};

// Builds (or completes) the cache. INVALID_ARGUMENT for bad options; FAILED_PRECONDITION when
// out_dir holds a cache made with other settings. `log` (optional) gets one line per batch.
absl::StatusOr<TrajectoryCacheSummary> BuildTrajectoryCache(
    const TrajectoryCacheOptions& options, const std::function<void(const std::string&)>& log = {});

// A finished cache, read through memory maps. Thread-compatible.
class TrajectoryCache {
 public:
  // NOT_FOUND without a manifest; FAILED_PRECONDITION when the cache is incomplete.
  static absl::StatusOr<std::unique_ptr<TrajectoryCache>> Open(const std::string& dir);

  int64_t videos() const { return videos_; }
  int64_t steps() const { return static_cast<int64_t>(timesteps_.size()); }
  bool guided() const { return guided_; }
  double guidance() const { return guidance_; }
  const std::vector<double>& sigmas() const { return sigmas_; }  // steps + 1
  const std::vector<int64_t>& timesteps() const { return timesteps_; }
  const std::string& base_model() const { return base_model_; }
  const std::string& base_weights_sha256() const { return base_sha_; }
  const std::string& manifest_sha256() const { return manifest_sha_; }
  const std::vector<std::string>& prompts() const { return prompts_; }
  const std::vector<int64_t>& latent_shape() const { return latent_shape_; }  // [C, F', h, w]

  // One recorded step of one video, fp32 on the CPU: x_t, the branch velocities (u_uncond
  // undefined without guidance) and the prompt's embedding.
  struct Point {
    torch::Tensor x, u_cond, u_uncond, context;
  };
  Point Get(int64_t video, int64_t step) const;
  torch::Tensor FinalSample(int64_t video) const;  // [C, F', h, w] fp32
  const torch::Tensor& negative_context() const { return negative_; }

 private:
  TrajectoryCache() = default;
  struct Shard {
    int64_t first = 0, count = 0;
    io::TensorMap tensors;
  };
  const Shard& ShardOf(int64_t video) const;
  int64_t videos_ = 0;
  bool guided_ = false;
  double guidance_ = 1.0;
  std::vector<double> sigmas_;
  std::vector<int64_t> timesteps_;
  std::vector<int64_t> latent_shape_;
  std::string base_model_, base_sha_, manifest_sha_;
  std::vector<std::string> prompts_;
  std::vector<Shard> shards_;
  torch::Tensor negative_;
};

// SHA-256 over a model folder's transformer weights (the files in name order, see
// io::Sha256Files): the identity of the exact weights a cache or a conversion came from.
absl::StatusOr<std::string> TransformerWeightsSha256(const std::string& model_dir);

}  // namespace linvideo::core::posttrain

#pragma once
// Data-parallel training over N processes with LibTorch's c10d (Gloo), configured the way torchrun
// and the Kubeflow training operator configure a PyTorch job: WORLD_SIZE, RANK, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT.
//
// The scheme every trainer in core/train and core/posttrain follows (docs/training.md):
//  * Each step draws the randomness of the COMBINED batch from (seed, step) exactly as one
//    process would, and each rank keeps its own rows (Shard). So the data of a step does not
//    depend on the world size, and a run can resume with another world size.
//  * The per-rank loss is the mean over its rows (or its part of a global sum divided by the
//    global normaliser, GlobalSum), gradients are averaged across ranks (AverageGradients) before
//    clipping and the optimizer step, so every rank applies the same update as one process on the
//    combined batch, up to the summation order of floating-point reductions.
//  * Every rank keeps the full model, optimizer state and EMA; rank 0 alone writes checkpoints,
//    logs, progress files and exports. All ranks read the same checkpoint from a shared work
//    directory at start; CheckSame refuses ranks that disagree (e.g. unshared directories).
//  * A collective that fails (a peer died, a timeout) returns UNAVAILABLE; the process exits and
//    the job is restarted from the last checkpoint, with any world size that divides the batch.
//
// Without WORLD_SIZE (or WORLD_SIZE=1) everything here is a no-op on one process. The group is
// process-wide like torch.distributed's default group: Init once in main, Get anywhere.
// Thread-compatible: collectives are called from the training thread only.

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace linvideo::core::train {

struct ParallelEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr;  // required when world_size > 1
  int master_port = 0;      // required when world_size > 1
};

// Reads the variables through `getenv` (std::getenv in production). INVALID_ARGUMENT, naming the
// variable and what is allowed, for malformed or inconsistent values.
absl::StatusOr<ParallelEnv> ParseParallelEnv(const std::function<const char*(const char*)>& getenv);

// Rows [begin, begin + count) of a combined batch that this rank computes.
struct Shard {
  int64_t begin = 0;
  int64_t count = 0;
};

// Standard normal noise for all `combined_rows` rows of a combined batch, each row shaped like a
// row of `like` (dim 0 is this rank's rows), drawn from `gen` as one process would; `shard`'s rows
// are returned. So a row's noise does not depend on the world size.
torch::Tensor ShardRandn(const torch::Tensor& like, int64_t combined_rows, const Shard& shard,
                         at::Generator& gen);

class DataParallel {
 public:
  // Joins the group described by `env` (rendezvous through a TCP store on MASTER_ADDR:MASTER_PORT
  // served by rank 0; waits up to `timeout` for all ranks, which is also every collective's
  // timeout). A second Init is FAILED_PRECONDITION. UNIMPLEMENTED when world_size > 1 and this
  // build has no Gloo (LINVIDEO_HAS_GLOO off).
  static absl::Status Init(const ParallelEnv& env, std::chrono::milliseconds timeout);
  // The process-wide group: the one Init joined, or a single-process group.
  static DataParallel& Get();

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  int local_rank() const { return env_.local_rank; }
  bool root() const { return env_.rank == 0; }
  bool distributed() const { return env_.world_size > 1; }

  // This rank's rows of a combined batch of `batch` rows. INVALID_ARGUMENT, naming `what` (e.g.
  // "--batch"), when the world size does not divide it.
  absl::StatusOr<Shard> ShardOf(int64_t batch, absl::string_view what) const;

  // Replaces every defined gradient of `params` with its mean over the ranks (one flat fp32
  // all-reduce; on CUDA the buffer goes through host memory, since the group is Gloo). The set of
  // defined gradients must be the same on every rank.
  absl::Status AverageGradients(const std::vector<torch::Tensor>& params) const;
  // Sum and mean of a scalar over the ranks (losses for logging, global loss normalisers, and any
  // value a decision depends on, so every rank decides the same).
  absl::StatusOr<double> GlobalSum(double value) const;
  absl::StatusOr<double> GlobalMean(double value) const;
  // FAILED_PRECONDITION naming `what` unless `value` is the same on every rank.
  absl::Status CheckSame(double value, absl::string_view what) const;
  // A checksum of `tensors`' fp32 values, the same on every rank when the weights are:
  // CheckSame(ParameterChecksum(...)) after loading a checkpoint.
  static double ParameterChecksum(const std::vector<torch::Tensor>& tensors);
  // Returns when every rank has called it.
  absl::Status Barrier() const;

  ~DataParallel();

 private:
  struct Group;  // the c10d store and process group (absent on one process)
  DataParallel() = default;
  absl::StatusOr<torch::Tensor> AllReduce(torch::Tensor t, bool max) const;

  ParallelEnv env_;
  std::unique_ptr<Group> group_;
};

}  // namespace linvideo::core::train

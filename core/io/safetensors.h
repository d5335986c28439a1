#pragma once
// safetensors checkpoint files (https://github.com/huggingface/safetensors format):
// 8-byte little-endian header length, JSON header {name: {dtype, shape, data_offsets},
// "__metadata__"}, then the raw little-endian tensor bytes.
//
// Reading memory-maps the file (read-only, MAP_PRIVATE); tensors handed out are zero-copy views
// into the mapping when no dtype conversion is needed and the data is aligned (the mapping lives as
// long as any tensor or the reader references it). The views are READ-ONLY memory: writing into
// them in place crashes (SIGSEGV) — clone() first, or ask for a dtype (copies). Truncating a file
// while it is mapped makes later reads fault (SIGBUS); checkpoints are replaced by rename, which is
// safe. Every header field is validated: a malformed or hostile file gets INVALID_ARGUMENT /
// DATA_LOSS with a message naming the problem, never a crash or an allocation larger than the file.
// Writing is atomic: temp file in the same folder, fsync, rename, fsync of the folder.

#include <torch/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace linvideo::core::io {

// Ordered name -> tensor map (a state dict).
using TensorMap = std::map<std::string, torch::Tensor>;
using Metadata = std::map<std::string, std::string>;

// Largest JSON header accepted (the format's reference implementation uses 100 MB).
inline constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
// Most dimensions a tensor may have.
inline constexpr size_t kMaxTensorRank = 32;

// "F32" <-> torch::kFloat etc. INVALID_ARGUMENT for names/types outside the supported list.
absl::StatusOr<torch::ScalarType> DtypeFromSafetensorsName(const std::string& name);
absl::StatusOr<std::string> SafetensorsDtypeName(torch::ScalarType dtype);

struct TensorInfo {
  std::string name;
  torch::ScalarType dtype;  // F32, BF16, F16, F64, I64, I32, I16, I8, U8, BOOL
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the start of the data section
  uint64_t end = 0;
};

class SafetensorsReader {
 public:
  // Opens and validates `path`. Thread-safe after creation (read-only).
  static absl::StatusOr<std::unique_ptr<SafetensorsReader>> Open(const std::string& path);
  ~SafetensorsReader();

  const std::string& path() const { return path_; }
  // Tensor names in file order of their data offsets.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const Metadata& metadata() const { return metadata_; }
  bool Contains(const std::string& name) const;
  // The tensor (CPU). With `dtype` (must be floating), floating tensors are converted to it (a
  // copy; integer and bool tensors are returned unchanged); without it, or when the dtype already
  // matches, a zero-copy read-only view that keeps the mapping alive (a copy when the data is not
  // aligned to its element size). NOT_FOUND lists a few names that do exist; DATA_LOSS for BOOL
  // bytes other than 0/1.
  absl::StatusOr<torch::Tensor> Get(const std::string& name,
                                    std::optional<torch::ScalarType> dtype = std::nullopt) const;
  // All tensors.
  absl::StatusOr<TensorMap> ReadAll(std::optional<torch::ScalarType> dtype = std::nullopt) const;

 private:
  SafetensorsReader() = default;
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> mapping_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  Metadata metadata_;
};

// Whole-file convenience.
absl::StatusOr<TensorMap> ReadSafetensors(const std::string& path,
                                          std::optional<torch::ScalarType> dtype = std::nullopt);
// Writes CPU-contiguous copies of `tensors` (any device, strided layout) atomically: header keys
// sorted by name and padded with spaces to a multiple of 8 bytes; data laid out by element size
// (largest first) then name, so every tensor is aligned and reads back zero-copy. INVALID_ARGUMENT
// for undefined tensors, empty names, "__metadata__" as a name, or unsupported dtypes.
absl::Status WriteSafetensors(const std::string& path, const TensorMap& tensors,
                              const Metadata& metadata = {});

// Weights of one component folder: `<dir>/<stem>.safetensors`, or the sharded form
// `<dir>/<stem>.safetensors.index.json` ({"metadata": {"total_size": N}, "weight_map": {name:
// file}}) + `<stem>-0000N-of-0000M.safetensors`, else a torch.save checkpoint `<stem>.pth` /
// `<stem>.pt` (torch_checkpoint.h; the official Wan VAE and umT5 files). With an empty `stem`: the
// folder's only `*.safetensors.index.json`, else its only `*.safetensors`, else its only `*.pth` /
// `*.pt`. Errors: both forms present
// (FAILED_PRECONDITION), none (NOT_FOUND), missing shard (NOT_FOUND), shard names with a path
// separator or "..", tensors listed in the index but missing from their shard, present in two
// shards, or in a shard but not in the index (DATA_LOSS).
absl::StatusOr<TensorMap> ReadWeights(const std::string& dir, const std::string& stem,
                                      std::optional<torch::ScalarType> dtype = std::nullopt);
// Writes `<stem>.safetensors`, or shards + index when the total exceeds `max_shard_bytes` (> 0;
// tensors in name order, a tensor larger than the limit gets a shard of its own). Creates `dir` if
// needed. Shards are written before the index, and files of the other form for the same stem (an
// old index / single file / `<stem>-N-of-M` shards) are removed afterwards so reads are
// unambiguous. `metadata` goes into every file's "__metadata__".
absl::Status WriteWeights(const std::string& dir, const std::string& stem, const TensorMap& tensors,
                          uint64_t max_shard_bytes = 0, const Metadata& metadata = {});

}  // namespace linvideo::core::io

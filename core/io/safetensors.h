#pragma once
// safetensors checkpoint files (https://github.com/huggingface/safetensors format):
// 8-byte little-endian header length, JSON header {name: {dtype, shape, data_offsets}, "__metadata__"},
// then the raw little-endian tensor bytes.
//
// Reading memory-maps the file; tensors handed out are zero-copy views into the mapping when no
// dtype conversion is needed (the mapping lives as long as any tensor or the reader references it).
// Every header field is validated: a malformed or hostile file gets INVALID_ARGUMENT / DATA_LOSS
// with a message naming the problem, never a crash or an allocation larger than the file.
// Writing is atomic: temp file in the same folder, fsync, rename, fsync of the folder.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace linvideo::core::io {

// Ordered name -> tensor map (a state dict).
using TensorMap = std::map<std::string, torch::Tensor>;
using Metadata = std::map<std::string, std::string>;

// Largest JSON header accepted (the format's reference implementation uses 100 MB).
inline constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

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
  // The tensor (CPU). With `dtype`, floating tensors are converted (a copy); without it, a zero-copy
  // view that keeps the mapping alive. NOT_FOUND lists a few names that do exist.
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
// Writes CPU-contiguous copies of `tensors` (any device/layout accepted) atomically.
absl::Status WriteSafetensors(const std::string& path, const TensorMap& tensors,
                              const Metadata& metadata = {});

// Weights of one component folder: `<dir>/<stem>.safetensors`, or the sharded form
// `<dir>/<stem>.safetensors.index.json` + `<stem>-0000N-of-0000M.safetensors` (also any single
// `*.safetensors` when `stem` is empty and exactly one exists). Missing shards, tensors listed twice,
// or index entries pointing at files that lack them are errors.
absl::StatusOr<TensorMap> ReadWeights(const std::string& dir, const std::string& stem,
                                      std::optional<torch::ScalarType> dtype = std::nullopt);
// Writes `<stem>.safetensors`, or shards + index when the total exceeds `max_shard_bytes` (> 0).
absl::Status WriteWeights(const std::string& dir, const std::string& stem, const TensorMap& tensors,
                          uint64_t max_shard_bytes = 0, const Metadata& metadata = {});

}  // namespace linvideo::core::io

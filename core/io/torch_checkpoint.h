#pragma once
// PyTorch checkpoints written by torch.save (`.pth` / `.pt`): the zip format of PyTorch >= 1.6
// (`<name>/data.pkl` + one record per storage `<name>/data/<key>`). The official Wan 2.1 releases
// ship their VAE (Wan2.1_VAE.pth) and umT5 encoder (models_t5_umt5-xxl-enc-bf16.pth) this way;
// both are plain state dicts.
//
// The archive is read by LibTorch's own zip reader (caffe2::serialize::PyTorchStreamReader); the
// pickle by a restricted unpickler of our own, because LibTorch 1.13's (torch::jit) cannot read
// what torch.save(model.state_dict()) writes (SETITEM and BUILD for the OrderedDict's _metadata,
// nn.Parameter). It rebuilds only tensors, OrderedDict and nn.Parameter: nothing the pickle names
// is ever run, and any other global is an error naming it. A hostile file is bounded: data.pkl at
// most 64 MiB, at most 8M pickle values, no recursion, storage keys decimal (each record read
// once), records together no larger than the file, every tensor inside its storage and no larger
// than it. Damage is DATA_LOSS, never a crash.

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/io/safetensors.h"

namespace linvideo::core::io {

// File name suffixes read as torch.save checkpoints.
inline constexpr const char* kTorchCheckpointSuffixes[] = {".pth", ".pt"};
bool IsTorchCheckpointName(const std::string& file_name);

// The state dict in `path`: a dict (or OrderedDict) of name -> tensor; a dict whose only dict value
// sits under "state_dict", "model" or "module" (a training checkpoint) is unwrapped. Tensors come
// back contiguous on the CPU; with `dtype` (floating), floating tensors are converted to it, each
// storage as it is read (peak memory: the converted tensors plus one stored record).
// Errors: NOT_FOUND (no file), INVALID_ARGUMENT (the legacy pre-1.6 format, a pickle that is not a
// state dict, a non-string key or non-tensor value, naming it), DATA_LOSS (a damaged archive).
absl::StatusOr<TensorMap> ReadTorchCheckpoint(
    const std::string& path, std::optional<torch::ScalarType> dtype = std::nullopt);

// The archive-free part, for tests and the fuzz target: the state dict pickled in `pickle` (a
// checkpoint's data.pkl), each storage read through `records` ("data/<key>" -> its bytes as a 1-D
// uint8 tensor that the result may keep). `source` names the input in messages.
using TorchRecordReader = std::function<absl::StatusOr<torch::Tensor>(const std::string& name)>;
absl::StatusOr<TensorMap> ParseTorchStateDict(
    const std::string& source, const std::string& pickle, const TorchRecordReader& records,
    std::optional<torch::ScalarType> dtype = std::nullopt);

}  // namespace linvideo::core::io

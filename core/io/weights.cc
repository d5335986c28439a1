// Single-file and sharded (`*.safetensors.index.json`, Hugging Face convention) weight folders.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <set>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/common/status.h"
#include "core/io/json_file.h"
#include "core/io/safetensors.h"
#include "core/io/torch_checkpoint.h"

namespace linvideo::core::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kSingleSuffix[] = ".safetensors";
constexpr char kIndexSuffix[] = ".safetensors.index.json";

bool IsFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

std::string ShardName(const std::string& stem, size_t i, size_t n) {
  return absl::StrFormat("%s-%05d-of-%05d.safetensors", stem, i, n);
}

// Shard file names must stay inside the folder: a plain file name, no separators, not "."/"..".
absl::Status CheckShardName(const std::string& index_path, const std::string& tensor,
                            const std::string& file) {
  if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos ||
      file.find('\\') != std::string::npos || file.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path, ": tensor \"", tensor, "\" maps to \"", file,
                     "\"; shard entries must be plain file names inside the folder"));
  }
  return absl::OkStatus();
}

absl::StatusOr<TensorMap> ReadSharded(const fs::path& dir, const fs::path& index_path,
                                      std::optional<torch::ScalarType> dtype) {
  const std::string ip = index_path.string();
  LV_ASSIGN_OR_RETURN(json index, ReadJsonFile(ip));
  if (!index.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(ip, ": must be an object with \"weight_map\""));
  }
  auto map_it = index.find("weight_map");
  if (map_it == index.end() || !map_it->is_object() || map_it->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        ip,
        ": \"weight_map\" must be an object {tensor name: shard file} with at least one entry"));
  }
  if (auto meta = index.find("metadata");
      meta != index.end() && !meta->is_object() && !meta->is_null()) {
    return absl::InvalidArgumentError(absl::StrCat(ip, ": \"metadata\" must be an object"));
  }
  std::map<std::string, std::vector<std::string>> by_shard;  // file -> tensor names
  for (const auto& [name, file] : map_it->items()) {
    if (!file.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(ip, ": tensor \"", name, "\" must map to a shard file name string"));
    }
    LV_RETURN_IF_ERROR(CheckShardName(ip, name, file.get<std::string>()));
    by_shard[file.get<std::string>()].push_back(name);
  }
  // Open every shard and check it against the index before reading any tensor.
  std::map<std::string, std::unique_ptr<SafetensorsReader>> readers;
  for (const auto& [file, names] : by_shard) {
    const fs::path shard = dir / file;
    if (!IsFile(shard)) {
      return absl::NotFoundError(absl::StrCat(ip, ": shard ", shard.string(), " (holding \"",
                                              names.front(), "\" and ", names.size() - 1,
                                              " more) does not exist"));
    }
    LV_ASSIGN_OR_RETURN(auto reader, SafetensorsReader::Open(shard.string()));
    for (const std::string& name : names) {
      if (!reader->Contains(name)) {
        return absl::DataLossError(absl::StrCat(ip, ": tensor \"", name, "\" is listed in shard ",
                                                file, " but that file does not contain it"));
      }
    }
    readers[file] = std::move(reader);
  }
  for (const auto& [file, reader] : readers) {
    for (const TensorInfo& info : reader->tensors()) {
      auto it = map_it->find(info.name);
      if (it == map_it->end()) {
        return absl::DataLossError(absl::StrCat(ip, ": shard ", file, " holds tensor \"", info.name,
                                                "\" that the index does not list"));
      }
      if (it->get<std::string>() != file) {
        return absl::DataLossError(absl::StrCat(ip, ": tensor \"", info.name,
                                                "\" is present in two shards (", file, " and ",
                                                it->get<std::string>(), ")"));
      }
    }
  }
  TensorMap out;
  for (const auto& [file, reader] : readers) {
    LV_ASSIGN_OR_RETURN(TensorMap part, reader->ReadAll(dtype));
    out.merge(part);
  }
  return out;
}

// Files in `dir` whose names end with `suffix`, sorted.
std::vector<std::string> ListWithSuffix(const fs::path& dir, const std::string& suffix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (absl::EndsWith(name, suffix) && IsFile(it->path())) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

absl::StatusOr<TensorMap> ReadWeights(const std::string& dir, const std::string& stem,
                                      std::optional<torch::ScalarType> dtype) {
  const fs::path folder(dir);
  if (stem.empty()) {
    std::vector<std::string> indexes = ListWithSuffix(folder, kIndexSuffix);
    if (indexes.size() == 1) return ReadSharded(folder, folder / indexes[0], dtype);
    if (indexes.size() > 1) {
      return absl::FailedPreconditionError(absl::StrCat(dir, " holds several index files (",
                                                        absl::StrJoin(indexes, ", "),
                                                        "); name the one to load by its stem"));
    }
    std::vector<std::string> files = ListWithSuffix(folder, kSingleSuffix);
    if (files.size() == 1) return ReadSafetensors((folder / files[0]).string(), dtype);
    if (files.empty()) {
      std::vector<std::string> checkpoints;
      for (const char* suffix : kTorchCheckpointSuffixes) {
        for (std::string& f : ListWithSuffix(folder, suffix)) checkpoints.push_back(std::move(f));
      }
      if (checkpoints.size() == 1)
        return ReadTorchCheckpoint((folder / checkpoints[0]).string(), dtype);
      if (checkpoints.empty()) {
        return absl::NotFoundError(
            absl::StrCat("no *.safetensors, *.safetensors.index.json, *.pth or *.pt in ", dir));
      }
      return absl::FailedPreconditionError(
          absl::StrCat(dir, " holds several torch.save checkpoints (",
                       absl::StrJoin(checkpoints, ", "), "); name the one to load by its stem"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " holds several *.safetensors files (", absl::StrJoin(files, ", "),
                     ") and no index; name the one to load by its stem"));
  }
  if (stem.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights stem \"", stem, "\" must be a file name stem without '/'"));
  }
  const fs::path single = folder / (stem + kSingleSuffix);
  const fs::path index = folder / (stem + kIndexSuffix);
  const bool has_single = IsFile(single), has_index = IsFile(index);
  if (has_single && has_index) {
    return absl::FailedPreconditionError(absl::StrCat(
        "both ", single.string(), " and ", index.string(), " exist; keep only one of them"));
  }
  if (has_single) return ReadSafetensors(single.string(), dtype);
  if (has_index) return ReadSharded(folder, index, dtype);
  for (const char* suffix : kTorchCheckpointSuffixes) {
    const fs::path checkpoint = folder / (stem + suffix);
    if (IsFile(checkpoint)) return ReadTorchCheckpoint(checkpoint.string(), dtype);
  }
  return absl::NotFoundError(absl::StrCat("none of ", single.string(), ", ", index.string(), ", ",
                                          stem, ".pth or ", stem, ".pt exists in ", dir));
}

absl::Status WriteWeights(const std::string& dir, const std::string& stem, const TensorMap& tensors,
                          uint64_t max_shard_bytes, const Metadata& metadata) {
  if (stem.empty() || stem.find('/') != std::string::npos || stem == "." || stem == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("weights stem \"", stem, "\" must be a non-empty file name stem"));
  }
  const fs::path folder(dir);
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));

  // Group tensors (name order) into shards of at most max_shard_bytes each.
  std::vector<std::vector<std::string>> shards(1);
  uint64_t total = 0, current = 0;
  for (const auto& [name, t] : tensors) {
    const uint64_t nbytes = t.defined() ? static_cast<uint64_t>(t.numel()) * t.element_size() : 0;
    if (max_shard_bytes > 0 && !shards.back().empty() && current + nbytes > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(name);
    current += nbytes;
    total += nbytes;
  }
  const fs::path single = folder / (stem + kSingleSuffix);
  const fs::path index = folder / (stem + kIndexSuffix);
  std::set<std::string> written;
  if (shards.size() == 1) {
    LV_RETURN_IF_ERROR(WriteSafetensors(single.string(), tensors, metadata));
    written.insert(single.filename().string());
    fs::remove(index, ec);
  } else {
    json weight_map = json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string file = ShardName(stem, i + 1, shards.size());
      TensorMap part;
      for (const std::string& name : shards[i]) {
        part.emplace(name, tensors.at(name));
        weight_map[name] = file;
      }
      LV_RETURN_IF_ERROR(WriteSafetensors((folder / file).string(), part, metadata));
      written.insert(file);
    }
    json index_json = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    LV_RETURN_IF_ERROR(WriteJsonFile(index.string(), index_json));
    fs::remove(single, ec);
  }
  // Stale shards of an earlier write with the same stem would confuse stem-less reads.
  const std::regex shard_re(std::string("-[0-9]{5}-of-[0-9]{5}\\.safetensors"));
  for (const std::string& name : ListWithSuffix(folder, kSingleSuffix)) {
    if (written.count(name) || !absl::StartsWith(name, stem)) continue;
    if (std::regex_match(name.substr(stem.size()), shard_re)) fs::remove(folder / name, ec);
  }
  return absl::OkStatus();
}

}  // namespace linvideo::core::io

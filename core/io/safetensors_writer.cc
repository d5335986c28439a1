// safetensors writer: header built from sizes first, then one tensor at a time is made
// CPU-contiguous and streamed into an atomic temp file (peak extra memory: one tensor, not the
// whole checkpoint).
#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/status.h"
#include "core/io/file_util.h"
#include "core/io/safetensors.h"

namespace linvideo::core::io {

absl::Status WriteSafetensors(const std::string& path, const TensorMap& tensors,
                              const Metadata& metadata) {
  auto bad = [&path](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("cannot write ", path, ": ", what));
  };
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) {
    nlohmann::json meta = nlohmann::json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  // Data layout: larger elements first, then by name (as the reference implementation does), so
  // with the 8-aligned data section every tensor is aligned to its element size and maps zero-copy.
  std::vector<std::pair<std::string, torch::Tensor>> order(tensors.begin(), tensors.end());
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    const size_t ea = a.second.defined() ? a.second.element_size() : 0;
    const size_t eb = b.second.defined() ? b.second.element_size() : 0;
    return ea > eb;
  });
  uint64_t offset = 0;
  for (const auto& [name, t] : order) {
    if (name.empty()) return bad("empty tensor names are not allowed");
    if (name == "__metadata__") return bad("\"__metadata__\" is reserved and not a tensor name");
    if (!t.defined()) return bad(absl::StrCat("tensor \"", name, "\" is undefined"));
    if (t.layout() != torch::kStrided) {
      return bad(absl::StrCat("tensor \"", name,
                              "\" is not dense (strided); only dense tensors "
                              "can be stored"));
    }
    absl::StatusOr<std::string> dtype = SafetensorsDtypeName(t.scalar_type());
    if (!dtype.ok()) {
      return bad(absl::StrCat("tensor \"", name, "\": ", dtype.status().message()));
    }
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    nlohmann::json entry;
    entry["dtype"] = *dtype;
    entry["shape"] = t.sizes().vec();
    entry["data_offsets"] = {offset, offset + nbytes};
    header[name] = std::move(entry);
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const std::exception& e) {
    return bad(absl::StrCat("names and metadata must be valid UTF-8: ", e.what()));
  }
  // Spaces keep the data section 8-byte aligned, so every tensor of the common dtypes maps aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxHeaderBytes) {
    return bad(absl::StrCat("header of ", text.size(), " bytes exceeds ", kMaxHeaderBytes));
  }
  uint8_t len_bytes[8];
  uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<uint8_t>(len >> (8 * i));

  return WriteFileAtomicWith(path, [&](FileSink& sink) -> absl::Status {
    LV_RETURN_IF_ERROR(sink.Write(len_bytes, sizeof(len_bytes)));
    LV_RETURN_IF_ERROR(sink.Write(text.data(), text.size()));
    for (const auto& entry : order) {
      const torch::Tensor& t = entry.second;  // (a lambda cannot capture a structured binding)
      LV_ASSIGN_OR_RETURN(torch::Tensor cpu,
                          TorchCall(absl::StrCat("copying ", entry.first, " to CPU"),
                                    [&] { return t.to(torch::kCPU).contiguous(); }));
      LV_RETURN_IF_ERROR(sink.Write(cpu.data_ptr(), cpu.numel() * cpu.element_size()));
    }
    if (sink.bytes_written() != 8 + text.size() + offset) {
      return absl::InternalError(absl::StrCat("wrote ", sink.bytes_written(), " bytes to ", path,
                                              ", expected ", 8 + text.size() + offset));
    }
    return absl::OkStatus();
  });
}

}  // namespace linvideo::core::io

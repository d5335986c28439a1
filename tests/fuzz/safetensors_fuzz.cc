// safetensors files (core/io/safetensors.h) from arbitrary bytes: Open validates the header,
// then every tensor is read as stored and converted to fp32. Invariants: an opened file's tensors
// have exactly the bytes their header claims; a read never faults or allocates beyond the file.
#include <torch/types.h>

#include "core/io/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using linvideo::fuzz::Check;
  namespace io = linvideo::core::io;
  static const std::string path = linvideo::fuzz::ScratchDir() + "/fuzz.safetensors";
  linvideo::fuzz::WriteFile(path, data, size);
  auto reader = io::SafetensorsReader::Open(path);
  if (!reader.ok()) return 0;
  for (const io::TensorInfo& t : (*reader)->tensors()) {
    Check(t.begin <= t.end && t.end <= size, "tensor bytes outside the file");
    auto raw = (*reader)->Get(t.name);
    if (raw.ok()) {
      Check(static_cast<uint64_t>(raw->numel()) * raw->element_size() == t.end - t.begin,
            "tensor size differs from its data_offsets");
      Check(raw->sizes().vec() == t.shape, "tensor shape differs from its header");
    }
    auto f32 = (*reader)->Get(t.name, torch::kFloat);
    if (f32.ok() && raw.ok()) Check(f32->numel() == raw->numel(), "conversion changed numel");
  }
  return 0;
}

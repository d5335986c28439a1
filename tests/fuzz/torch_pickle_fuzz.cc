// torch.save state-dict pickles (core/io/torch_checkpoint.h, the data.pkl of a .pth) from
// arbitrary bytes. Every storage record "data/<key>" holds 64 zero bytes, so tensors are rebuilt
// against a real storage. Invariants: a parse never faults, recurses without bound or leaks; every
// tensor it returns is contiguous, no larger than its storage, and reads only its (zero) bytes.
#include <torch/types.h>

#include <string>

#include "core/io/torch_checkpoint.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using linvideo::fuzz::Check;
  namespace io = linvideo::core::io;
  const std::string pickle(reinterpret_cast<const char*>(data), size);
  auto records = [](const std::string& name) -> absl::StatusOr<torch::Tensor> {
    if (name.size() > 16) return absl::DataLossError("no such record");
    return torch::zeros({64}, torch::kUInt8);
  };
  auto sd = io::ParseTorchStateDict("fuzz", pickle, records);
  if (!sd.ok()) {
    Check(!sd.status().message().empty(), "an error without a message");
    return 0;
  }
  for (const auto& [name, t] : *sd) {
    Check(t.is_contiguous(), "a tensor that is not contiguous");
    Check(t.numel() <= 64, "a tensor with more elements than its storage");
    Check(t.numel() == 0 || t.to(torch::kFloat).abs().sum().item<float>() == 0.f,
          "a tensor over zero storages read non-zero values");
  }
  return 0;
}

// Sharded weight folders (core/io/safetensors.h ReadWeights): the fuzzer writes the
// model.safetensors.index.json beside two fixed valid shards. Invariant: whatever the index says,
// a successful read returns only tensors the shards hold (a, b), unchanged, and at least one (an
// index must map some tensor; a shard the index never names is not read).
#include <torch/torch.h>

#include "core/io/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

namespace io = linvideo::core::io;

const std::string& Folder() {
  static const std::string dir = [] {
    const std::string d = linvideo::fuzz::ScratchDir() + "/sharded";
    std::filesystem::create_directories(d);
    auto a = io::WriteSafetensors(d + "/model-00001-of-00002.safetensors",
                                  {{"a", torch::arange(6, torch::kFloat).reshape({2, 3})}});
    auto b = io::WriteSafetensors(d + "/model-00002-of-00002.safetensors",
                                  {{"b", torch::ones({4}, torch::kBFloat16)}});
    linvideo::fuzz::Check(a.ok() && b.ok(), "cannot write the fixed shards");
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = Folder();
  linvideo::fuzz::WriteFile(dir + "/model.safetensors.index.json", data, size);
  auto tensors = io::ReadWeights(dir, "model");
  if (!tensors.ok()) return 0;
  linvideo::fuzz::Check(!tensors->empty(), "an index that maps nothing was read");
  for (const auto& [name, t] : *tensors) {
    linvideo::fuzz::Check(name == "a" || name == "b", "a tensor no shard holds was returned");
    linvideo::fuzz::Check(t.numel() == (name == "a" ? 6 : 4), "a shard's tensor changed size");
  }
  return 0;
}

#include "core/sampling/noise.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace linvideo::core::sampling {

torch::Tensor SeededNoise(at::IntArrayRef shape, uint64_t seed, c10::ScalarType dtype,
                          c10::Device device) {
  // A private generator: at::randn with the default generator would depend on global RNG use.
  at::Generator generator = at::detail::createCPUGenerator(seed);
  torch::Tensor noise = at::randn(shape, generator, at::TensorOptions().dtype(at::kFloat));
  return noise.to(device, dtype);
}

torch::Tensor SeededNoiseBatch(at::IntArrayRef shape, const std::vector<uint64_t>& seeds,
                               c10::ScalarType dtype, c10::Device device) {
  std::vector<torch::Tensor> rows;
  rows.reserve(seeds.size());
  for (uint64_t seed : seeds) rows.push_back(SeededNoise(shape, seed));
  return at::stack(rows).to(device, dtype);  // [N, shape...]
}

}  // namespace linvideo::core::sampling

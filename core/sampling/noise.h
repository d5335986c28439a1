#pragma once
// Seeded, reproducible initial noise. Each call draws from its own CPU generator (Mersenne Twister,
// the one torch.Generator("cpu").manual_seed(seed) uses), so a request's noise depends only on its
// seed and shape: not on other RNG users, on the global seed, or on which requests share its batch.
// The noise is always drawn in float32 on the CPU (as Wan draws it) and then cast/moved, so it is
// identical across devices. Thread-safe.

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace linvideo::core::sampling {

// Standard normal noise of `shape`; same (seed, shape) -> bitwise-identical tensor.
torch::Tensor SeededNoise(at::IntArrayRef shape, uint64_t seed, c10::ScalarType dtype = c10::kFloat,
                          c10::Device device = c10::Device(c10::kCPU));

// One SeededNoise(shape, seeds[i]) per request, stacked: [seeds.size(), shape...].
torch::Tensor SeededNoiseBatch(at::IntArrayRef shape, const std::vector<uint64_t>& seeds,
                               c10::ScalarType dtype = c10::kFloat,
                               c10::Device device = c10::Device(c10::kCPU));

}  // namespace linvideo::core::sampling

#pragma once
// The one place where LibTorch version differences are handled. Debian 12 ships LibTorch 1.13.1
// (CPU); the GPU machines and production images use LibTorch 2.x.

#include <torch/version.h>

// LibTorch >= 2.0 has at::scaled_dot_product_attention (flash / memory-efficient kernels on CUDA).
#if TORCH_VERSION_MAJOR >= 2
#define LINVIDEO_TORCH_HAS_SDPA 1
#else
#define LINVIDEO_TORCH_HAS_SDPA 0
#endif

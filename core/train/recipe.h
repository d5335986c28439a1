#pragma once
// The default model's training recipe (models/default): the configs and hyper-parameters of the
// VAE and DiT stages. `linvideo-train` starts from these and lets flags override them; the
// recipe script scripts/train-default.sh runs both stages with no overrides except the thread
// count and the paths. Pure functions.

#include "core/train/dit_trainer.h"
#include "core/train/vae_trainer.h"

namespace linvideo::core::train {

// Wan VAE with base_dim 16, one residual block per stage, z_dim 16 (4x8x8 compression).
VaeTrainOptions DefaultVaeRecipe();
// Stage 2: fine-tunes stage 1 on full-length (33-frame) clips, so the causal caches of encoder
// and decoder are trained over all 8 chunk hand-overs that serving runs (stage 1 sees 2; its
// reconstructions drift in colour after the third latent frame).
VaeTrainOptions DefaultVaeLongRecipe();
// Stage 3: 300 more full-length steps from stage 2 with the frame-0 marker (+-2 channel stds), so
// latent frame 0 stands out even at sigma 0.95-1, where the DiT decides the trajectory and has no
// other cue to which frame is first (docs/quality.md, recipe v5).
VaeTrainOptions DefaultVaeMarkerRecipe();
// DiT: dim 256, 4 heads x 64, ffn 1024, 6 layers, text_len 32; umT5: dim 128, 2 layers, 4 heads,
// vocabulary 72 (one piece per grammar word). Clips 33 x 128 x 128 -> latents 9 x 16 x 16 -> 576
// DiT tokens.
DitTrainOptions DefaultDitRecipe();

}  // namespace linvideo::core::train

#include "core/train/recipe.h"

namespace linvideo::core::train {

VaeTrainOptions DefaultVaeRecipe() {
  VaeTrainOptions o;
  o.config.base_dim = 16;
  o.config.z_dim = 16;
  o.config.dim_mult = {1, 2, 4, 4};
  o.config.num_res_blocks = 1;
  o.config.temperal_downsample = {false, true, true};
  // Neutral statistics while training (the DiT stage measures the real ones).
  o.config.latents_mean.assign(16, 0.0);
  o.config.latents_std.assign(16, 1.0);
  o.steps = 2400;
  o.batch = 4;
  o.window = 9;  // 3 latent frames: the decoder's causal cache is trained over 2 hand-overs
  o.crop = 80;
  o.lr = 6e-4;  // 1.2e-3 with batch 2 and 17-frame windows plateaued at ~3x the loss
  o.warmup = 50;
  o.stop_at = 1600;  // then stage 2 (the remaining schedule is worth less than full-length clips)
  o.bf16 = true;     // 1.36x the fp32 step rate on AVX512-BF16 CPUs
  o.edge_weight = 1.0;  // with it (and stage 2 x2): held-out shape 25% -> 38%, motion 75 -> 100%
  return o;
}

VaeTrainOptions DefaultVaeLongRecipe() {
  VaeTrainOptions o = DefaultVaeRecipe();
  o.stop_at = 0;
  o.steps = 1400;
  o.batch = 2;
  o.window = 33;
  o.crop = 64;
  o.lr = 3e-4;
  o.warmup = 20;
  o.log_every = 20;
  return o;
}

VaeTrainOptions DefaultVaeMarkerRecipe() {
  VaeTrainOptions o = DefaultVaeLongRecipe();
  o.steps = 300;
  o.frame0_marker = 2.0;
  return o;
}

DitTrainOptions DefaultDitRecipe() {
  DitTrainOptions o;
  wan::WanConfig& d = o.dit;
  d.dim = 256;
  d.ffn_dim = 1024;
  d.freq_dim = 128;
  d.text_dim = 128;
  d.text_len = 32;
  d.in_dim = d.out_dim = 16;
  d.num_heads = 4;
  d.SetNumLayers(6);
  d.patch_size = {1, 2, 2};
  d.qk_norm = true;
  d.cross_attn_norm = true;
  wan::T5Config& t = o.t5;
  t.vocab = 72;  // the grammar's word-level tokenizer (scripts/train-default.sh)
  t.dim = 128;
  t.dim_attn = 128;
  t.dim_ffn = 256;
  t.num_heads = 4;
  t.num_layers = 2;
  t.num_buckets = 32;
  t.max_distance = 128;
  t.shared_pos = false;
  o.clips = 2000;
  // Subject paths centred (as in the evaluation prompts); only their length (travel 0.3-0.5)
  // varies. With paths anywhere (v3) the DiT learned colour but not motion (12%) in the 2-hour
  // budget. With +-0.1 jitter (v4-v7, about one DiT token) it learned motion but drew every shape
  // as a blob (seen shape 36-39%): at high noise its prediction averages over the positions it
  // cannot tell apart, and shapes ~2 tokens wide do not survive that average. v8, no jitter: 71%.
  o.scenes.layout_jitter = 0.0;
  // v7: the GELU kernel and the Linear cast fix made a step ~1.3x cheaper (0.59 s), so 6,800
  // steps (v5: 5,600 at 0.75 s) fit the same ~67 min, at 1.5x v5's peak learning rate.
  o.steps = 6800;
  o.batch = 8;  // (v6 experiment: 6 clips + frame_batch 24 -- no better shape, docs/quality.md)
  o.lr = 1.2e-3;
  o.bf16 = true;  // 1.6x the fp32 step rate on AVX512-BF16 CPUs
  o.fused_gelu = true;
  o.object_weight = 4.0;  // objects are ~3% of the latent pixels
  o.shift = 3.0;
  o.default_guidance = 5.0;
  return o;
}

}  // namespace linvideo::core::train

#!/usr/bin/env python3
"""Times one forward of the official Wan 2.1 DiT (WanModel), as a reference for linvideo's DiT step.

usage: official_dit_step.py WAN_CHECKOUT [--frames 21 --height 60 --width 104] [--batch 2]
                            [--dtype bf16|fp32] [--device cuda|cpu] [--layers 30] [--reps 5]
                            [--warmup 2] [--fp32-weights]

WAN_CHECKOUT is a work tree of github.com/Wan-Video/Wan2.1 or a folder made by
tests/gpu/prepare-wan.sh; only WAN_CHECKOUT/wan/modules/model.py is read. Nothing of the official
code is stored in this repository.

frames/height/width are latent sizes: an 81-frame 832x480 video gives 21 x 60 x 104 latents, which
with the (1, 2, 2) patch is 21 * 30 * 52 = 32,760 tokens per sample.

The model is Wan2.1-T2V-1.3B (dim 1536, 30 layers, 12 heads) with random weights. Its package
__init__ files are never run (they pull in T5, VAE, CLIP and the pipelines); the two imports that
model.py needs are replaced:
- diffusers' ConfigMixin/ModelMixin: the stand-ins in tests/parity/stubs (shared with the parity
  harness),
- wan.modules.attention.flash_attention: sdpa_attention() below, PyTorch's
  scaled_dot_product_attention (flash / memory-efficient kernels on CUDA).

bf16 runs the way the official pipeline (wan/text2video.py) does: under autocast to bfloat16. The
official forward needs autocast, since it feeds float32 activations (modulation, RoPE output) into
its Linear layers. Weights are cast to bf16 too, unless --fp32-weights keeps them in float32, as the
official pipeline loads them (autocast then casts them at every matmul).

Output lines:
  OFFICIAL_STEP_S median=<s> min=<s> reps=<n> tokens=<N> batch=<B> dtype=<d> device=<dev> torch=<v>
  OFFICIAL_PEAK_MEM bytes=<n> gib=<g>          (CUDA only; peak of the timed forwards, weights included)
"""
import argparse
import contextlib
import importlib
import math
import os
import statistics
import sys
import time
import types
import warnings

import torch

sys.dont_write_bytecode = True  # leave no __pycache__ in the checkout or the stubs folder
# PyTorch >= 2.0; None on 1.13 (Debian's python3-torch), where plain softmax attention is used.
SDPA = getattr(torch.nn.functional, 'scaled_dot_product_attention', None)


def sdpa_attention(q, k, v, q_lens=None, k_lens=None, dropout_p=0., softmax_scale=None,
                   q_scale=None, causal=False, window_size=(-1, -1), deterministic=False,
                   dtype=torch.bfloat16, version=None):
    """Stand-in for the official flash_attention, same signature and layout.

    q: [B, Lq, H, D], k/v: [B, Lk, H, D] -> [B, Lq, H, D] in q's dtype. The official one packs the
    batch by q_lens/k_lens for flash-attn's varlen kernel. Here every sequence is full length (the
    video tokens fill seq_len, the text context is padded to text_len and WanModel passes no text
    lengths), so lengths must be None or equal to the full length and are then ignored.
    """
    assert not causal and tuple(window_size) == (-1, -1) and dropout_p == 0.
    lq, lk = q.size(1), k.size(1)
    # WanModel passes its lengths as CPU tensors; checking a CUDA one would stall the stream.
    for lens, full in ((q_lens, lq), (k_lens, lk)):
        if lens is not None and lens.device.type == 'cpu' and int(lens.min()) != full:
            raise NotImplementedError('padded sequences are not supported by this benchmark')
    out_dtype = q.dtype
    # RoPE hands q/k over in float32; like the official code, compute in v's dtype (the model's).
    q, k = q.to(v.dtype), k.to(v.dtype)
    if q_scale is not None:
        q = q * q_scale
    if softmax_scale is not None:  # fold a custom scale into q; the default is 1/sqrt(D)
        q = q * (softmax_scale * math.sqrt(q.size(-1)))
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # -> [B, H, L, D]
    if SDPA is not None:
        o = SDPA(q, k, v)
    else:  # PyTorch < 2.0 (CPU smoke test): plain softmax attention, softmax in float32
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.size(-1))
        o = torch.matmul(s.float().softmax(-1).to(v.dtype), v)
    return o.transpose(1, 2).contiguous().to(out_dtype)



def import_wan_model(root):
    """Imports WanModel from ROOT/wan/modules/model.py without running any package __init__."""
    model_py = os.path.join(root, 'wan', 'modules', 'model.py')
    if not os.path.isfile(model_py):
        sys.exit(f'{model_py} not found: pass a Wan2.1 work tree or a tests/gpu/prepare-wan.sh folder')
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, '..', 'parity', 'stubs'))  # diffusers stand-ins
    # Empty packages pointing at the checkout folders, so `wan.modules.model` is found there.
    for name, path in (('wan', os.path.join(root, 'wan')),
                       ('wan.modules', os.path.join(root, 'wan', 'modules'))):
        pkg = types.ModuleType(name)
        pkg.__path__ = [path]
        sys.modules[name] = pkg
    attention = types.ModuleType('wan.modules.attention')
    attention.flash_attention = sdpa_attention
    sys.modules['wan.modules.attention'] = attention
    return importlib.import_module('wan.modules.model').WanModel


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('checkout')
    ap.add_argument('--frames', type=int, default=21)
    ap.add_argument('--height', type=int, default=60)
    ap.add_argument('--width', type=int, default=104)
    ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--dtype', choices=('bf16', 'fp32'), default='bf16')
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--layers', type=int, default=30)
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--fp32-weights', action='store_true',
                    help='with bf16: keep the weights in float32, as the official pipeline does')
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()
    assert a.height % 2 == 0 and a.width % 2 == 0, 'latent height/width must be even (patch 1x2x2)'
    assert a.reps >= 1
    if a.dtype == 'bf16' and not a.device.startswith('cuda'):
        # The official forward keeps its time embedding and modulation in float32 through
        # torch.cuda.amp.autocast(dtype=float32) regions, which do nothing off CUDA.
        sys.exit('--dtype bf16 needs --device cuda (use --dtype fp32 on the CPU)')

    # The official code uses torch.cuda.amp.autocast, which newer PyTorch flags as deprecated and
    # which warns on a machine without CUDA; neither matters here.
    warnings.filterwarnings('ignore', message='.*torch.cuda.amp.autocast.*')
    warnings.filterwarnings('ignore', message='.*CUDA is not available.*')

    WanModel = import_wan_model(os.path.abspath(a.checkout))
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    cuda = dev.type == 'cuda'
    dtype = {'bf16': torch.bfloat16, 'fp32': torch.float32}[a.dtype]

    cfg = dict(model_type='t2v', patch_size=(1, 2, 2), text_len=512, in_dim=16, dim=1536,
               ffn_dim=8960, freq_dim=256, text_dim=4096, out_dim=16, num_heads=12,
               num_layers=a.layers, window_size=(-1, -1), qk_norm=True, cross_attn_norm=True,
               eps=1e-6)
    # Build straight on the device where PyTorch can (>= 2.0): the CPU init of 1.3B is slow.
    if hasattr(torch.device, '__enter__'):
        with dev:
            model = WanModel(**cfg)
    else:
        model = WanModel(**cfg)
    model = model.to(dev).eval().requires_grad_(False)
    if dtype != torch.float32 and not a.fp32_weights:
        model = model.to(dtype)
    n_params = sum(p.numel() for p in model.parameters())

    F, H, W, B = a.frames, a.height, a.width, a.batch
    tokens = F * (H // 2) * (W // 2)
    # Latents in float32 as the pipeline's noise; text context in the model dtype (T5 output).
    x = [torch.randn(16, F, H, W, device=dev) for _ in range(B)]
    t = torch.full((B,), 500.0, device=dev)
    context = [torch.randn(512, 4096, device=dev, dtype=dtype) for _ in range(B)]

    def step():
        amp = (torch.autocast(dev.type, dtype=dtype) if dtype != torch.float32
               else contextlib.nullcontext())
        with torch.no_grad(), amp:
            return model(x, t, context, seq_len=tokens)

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    weights = 'fp32' if a.fp32_weights or dtype == torch.float32 else a.dtype
    print(f'OFFICIAL_CONFIG layers={a.layers} params={n_params} weights={weights} '
          f'compute={a.dtype} latents={F}x{H}x{W} attention={"sdpa" if SDPA else "explicit"}',
          flush=True)
    for _ in range(a.warmup):
        step()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for i in range(a.reps):
        sync()
        t0 = time.perf_counter()
        out = step()
        sync()
        times.append(time.perf_counter() - t0)
        print(f'rep {i}: {times[-1]:.4f} s', flush=True)
    assert len(out) == B and tuple(out[0].shape) == (16, F, H, W), tuple(out[0].shape)

    print(f'OFFICIAL_STEP_S median={statistics.median(times):.4f} min={min(times):.4f} '
          f'reps={a.reps} tokens={tokens} batch={B} dtype={a.dtype} device={dev.type} '
          f'torch={torch.__version__}', flush=True)
    if cuda:
        peak = torch.cuda.max_memory_allocated(dev)
        print(f'OFFICIAL_PEAK_MEM bytes={peak} gib={peak / 2**30:.2f}', flush=True)


if __name__ == '__main__':
    main()

# Dev-time parity harness: runs the official Wan 2.1 T5Encoder (extracted t5.py, tokenizer stubbed)
# on random weights and writes weights/inputs/outputs as safetensors for the C++ parity test.
import json, struct, sys
import numpy as np
import torch
torch.cuda.current_device = lambda: 'cpu'  # T5EncoderModel's default argument needs CUDA
from wanmods import t5

def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    blobs, off = [], 0
    names = {torch.float32: "F32", torch.int64: "I64", torch.float64: "F64"}
    for k, v in tensors.items():
        v = v.contiguous().cpu()
        b = v.numpy().tobytes()
        header[k] = {"dtype": names[v.dtype], "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b); off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h))); f.write(h)
        for b in blobs: f.write(b)

def case(name, seed, cfg, lens, L):
    torch.manual_seed(seed)
    m = t5.T5Encoder(**cfg, shared_pos=False, dropout=0.1).eval()
    # Larger-than-init norms/embeddings so every path matters.
    with torch.no_grad():
        for n, p in m.named_parameters():
            if 'norm' in n: p.uniform_(0.5, 1.5)
    B = len(lens)
    ids = torch.randint(3, cfg['vocab'], (B, L))
    mask = torch.zeros(B, L, dtype=torch.long)
    for b, n in enumerate(lens):
        mask[b, :n] = 1
        ids[b, n:] = 0
    with torch.no_grad():
        out = m(ids, mask)
        out64 = m.double()(ids, mask).float()
    t = {"w." + k: v.float() for k, v in m.state_dict().items()}
    t.update({"ids": ids, "mask": mask, "out": out.float(), "out64": out64})
    meta = {"config": json.dumps(dict(vocab=cfg['vocab'], dim=cfg['dim'], dim_attn=cfg['dim_attn'],
            dim_ffn=cfg['dim_ffn'], num_heads=cfg['num_heads'], num_layers=cfg['num_layers'],
            num_buckets=cfg['num_buckets'], shared_pos=False))}
    write_safetensors(f"{sys.argv[1]}/{name}.safetensors", t, meta)
    print(name, "fp32 vs fp64 official: max rel err", ((out - out64).abs().max() / out64.abs().max()).item())

import os
os.makedirs(sys.argv[1], exist_ok=True)
tiny = dict(vocab=256, dim=32, dim_attn=32, dim_ffn=48, num_heads=4, num_layers=2, num_buckets=32)
case("tiny_padded", 0, tiny, [20, 13, 1], 20)
mid = dict(vocab=1000, dim=64, dim_attn=64, dim_ffn=160, num_heads=4, num_layers=3, num_buckets=32)
case("mid_long", 1, mid, [300, 170], 300)  # distances past max_distance 128 (saturated buckets)
headdim = dict(vocab=500, dim=48, dim_attn=64, dim_ffn=96, num_heads=8, num_layers=2, num_buckets=16)
case("dimattn_ne_dim", 2, headdim, [40, 40], 40)

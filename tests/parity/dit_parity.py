"""Dev-time parity harness (not part of the repo): runs the official Wan WanModel on a random
tiny config and writes config/weights/inputs/reference for linvideo's dit_parity_test."""
import json, struct, sys, os
import numpy as np
import torch
sys.path.insert(0, os.environ.get('LINVIDEO_PARITY_REF', os.path.join(os.path.dirname(__file__), 'ref')))
from wan.modules.model import WanModel

def write_st(path, tensors):
    header, off, blobs = {}, 0, []
    for name, t in tensors.items():
        a = t.detach().contiguous().cpu().numpy()
        dt = {np.float32: 'F32', np.float64: 'F64', np.int64: 'I64'}[a.dtype.type]
        b = a.tobytes()
        header[name] = {'dtype': dt, 'shape': list(a.shape), 'data_offsets': [off, off + len(b)]}
        off += len(b); blobs.append(b)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h))); f.write(h)
        for b in blobs: f.write(b)

def read_st(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n)); data = f.read()
    out = {}
    for k, v in header.items():
        if k == '__metadata__': continue
        s, e = v['data_offsets']
        out[k] = torch.from_numpy(np.frombuffer(data[s:e], dtype={'F32': np.float32}[v['dtype']]).reshape(v['shape']).copy())
    return out

def main(out_dir, variant):
    torch.manual_seed(0)
    cfgs = {
        # head_dim 48 (RoPE pairs 8/8/8), odd sizes to exercise the plumbing.
        'a': dict(dim=96, ffn_dim=200, freq_dim=32, text_dim=40, text_len=24, in_dim=16, out_dim=16,
                  num_heads=2, num_layers=3, qk_norm=True, cross_attn_norm=True, eps=1e-6),
        # head_dim 64 like tiny; no qk_norm / cross_attn_norm; out_dim != in_dim.
        'b': dict(dim=128, ffn_dim=256, freq_dim=64, text_dim=64, text_len=32, in_dim=16, out_dim=12,
                  num_heads=2, num_layers=2, qk_norm=False, cross_attn_norm=False, eps=1e-5),
        # head_dim 128 like the real models (44/42/42 split).
        'c': dict(dim=256, ffn_dim=512, freq_dim=256, text_dim=64, text_len=16, in_dim=16, out_dim=16,
                  num_heads=2, num_layers=2, qk_norm=True, cross_attn_norm=True, eps=1e-6),
    }
    cfg = cfgs[variant]
    model = WanModel(model_type='t2v', patch_size=(1, 2, 2), window_size=(-1, -1), **cfg).eval()
    with torch.no_grad():  # random values everywhere (official init zeros the head)
        for name, p in model.named_parameters():
            if name.endswith('bias'):
                p.normal_(0, 0.1)
            elif 'norm' in name:
                p.normal_(1, 0.2)
            elif name.endswith('modulation'):
                p.normal_(0, 0.3)
            else:
                p.normal_(0, 1.0 / max(1, p[0].numel()) ** 0.5)
    B, F, H, W = 2, 3, 6, 8
    x = torch.randn(B, cfg['in_dim'], F, H, W)
    t = torch.tensor([999.0, 437.25])
    L = [cfg['text_len'] - 5, 7]
    ctx = torch.randn(B, max(L), cfg['text_dim'])
    ctx[1, L[1]:] = 0  # per-sample length: trailing zeros == the official zero padding
    seq_len = (F // 1) * (H // 2) * (W // 2)
    with torch.no_grad():
        out = model([x[i] for i in range(B)], t, [ctx[i, :L[i]] for i in range(B)], seq_len)
    out = torch.stack(out)
    os.makedirs(out_dir, exist_ok=True)
    conf = dict(cfg, model_type='t2v', patch_size=[1, 2, 2], _class_name='WanModel')
    json.dump(conf, open(os.path.join(out_dir, 'config.json'), 'w'), indent=1)
    write_st(os.path.join(out_dir, 'weights.safetensors'), dict(model.state_dict()))
    write_st(os.path.join(out_dir, 'inputs.safetensors'), {'x': x, 't': t, 'context': ctx})
    write_st(os.path.join(out_dir, 'reference.safetensors'), {'out': out})
    print(variant, 'reference written', tuple(out.shape), 'norm', out.norm().item())

def compare(out_dir):
    ref = read_st(os.path.join(out_dir, 'reference.safetensors'))['out']
    got = read_st(os.path.join(out_dir, 'linvideo_out.safetensors'))['out']
    rel = ((got - ref).norm() / ref.norm()).item()
    mx = ((got - ref).abs().max() / ref.abs().max()).item()
    print(f'{out_dir}: relative L2 error {rel:.3e}, max abs error / max |ref| {mx:.3e}')

if __name__ == '__main__':
    if sys.argv[1] == 'compare':
        compare(sys.argv[2])
    else:
        main(sys.argv[1], sys.argv[2])

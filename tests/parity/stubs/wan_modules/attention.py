# CPU fp32 stand-in for flash_attention: exact softmax attention with key-length masking.
import math
import torch
def flash_attention(q, k, v, q_lens=None, k_lens=None, dropout_p=0., softmax_scale=None,
                    q_scale=None, causal=False, window_size=(-1, -1), deterministic=False,
                    dtype=torch.bfloat16, version=None):
    assert window_size == (-1, -1) and not causal
    out_dtype = q.dtype
    q, k, v = q.double(), k.double(), v.double()
    scale = softmax_scale or 1.0 / math.sqrt(q.size(-1))
    s = torch.einsum('bqhd,bkhd->bhqk', q, k) * scale
    if k_lens is not None:
        mask = torch.arange(k.size(1))[None, :] >= k_lens[:, None]
        s = s.masked_fill(mask[:, None, None, :], float('-inf'))
    p = s.softmax(-1)
    return torch.einsum('bhqk,bkhd->bqhd', p, v).to(out_dtype)

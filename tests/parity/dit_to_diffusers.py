"""Converts a parity folder to the diffusers layout with diffusers' own rename rules
(convert_wan_transformer_to_diffusers, applied in order), config as WanTransformer3DModel."""
import json, os, sys, shutil
sys.path.insert(0, os.path.dirname(__file__))
from dit_parity import read_st, write_st
RULES = [("time_embedding.0", "condition_embedder.time_embedder.linear_1"),
 ("time_embedding.2", "condition_embedder.time_embedder.linear_2"),
 ("text_embedding.0", "condition_embedder.text_embedder.linear_1"),
 ("text_embedding.2", "condition_embedder.text_embedder.linear_2"),
 ("time_projection.1", "condition_embedder.time_proj"), ("cross_attn", "attn2"), ("self_attn", "attn1"),
 (".o.", ".to_out.0."), (".q.", ".to_q."), (".k.", ".to_k."), (".v.", ".to_v."),
 ("head.modulation", "scale_shift_table"), ("head.head", "proj_out"), ("modulation", "scale_shift_table"),
 ("ffn.0", "ffn.net.0.proj"), ("ffn.2", "ffn.net.2"),
 ("norm2", "norm__placeholder"), ("norm3", "norm2"), ("norm__placeholder", "norm3")]
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
w = read_st(os.path.join(src, 'weights.safetensors'))
out = {}
for k, v in w.items():
    n = k
    for a, b in RULES: n = n.replace(a, b)
    out[n] = v
write_st(os.path.join(dst, 'weights.safetensors'), out)
c = json.load(open(os.path.join(src, 'config.json')))
d = {"_class_name": "WanTransformer3DModel", "patch_size": [1, 2, 2], "num_attention_heads": c['num_heads'],
     "attention_head_dim": c['dim'] // c['num_heads'], "in_channels": c['in_dim'], "out_channels": c['out_dim'],
     "text_dim": c['text_dim'], "freq_dim": c['freq_dim'], "ffn_dim": c['ffn_dim'], "num_layers": c['num_layers'],
     "cross_attn_norm": c['cross_attn_norm'], "qk_norm": "rms_norm_across_heads" if c['qk_norm'] else None,
     "eps": c['eps'], "image_dim": None, "added_kv_proj_dim": None, "rope_max_seq_len": 1024,
     "text_len": c['text_len']}
json.dump(d, open(os.path.join(dst, 'config.json'), 'w'), indent=1)
for f in ['inputs.safetensors', 'reference.safetensors']: shutil.copy(os.path.join(src, f), dst)
print(dst, len(out), 'tensors; e.g.', sorted(out)[:3])

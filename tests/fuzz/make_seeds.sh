#!/usr/bin/env bash
# Regenerates the checked-in seed corpora (tests/fuzz/corpus/<target>/): a few valid inputs per
# target, from the shipped models, hand-written JSON and protoc's text format. Deterministic.
set -euo pipefail
cd "$(dirname "$0")/../.."
C=tests/fuzz/corpus
# Regression inputs (regression-*: what a fuzz run once found) are kept.
[ -d "$C" ] && find "$C" -type f ! -name 'regression-*' -delete
mkdir -p "$C"/{safetensors_fuzz,weights_index_fuzz,model_config_fuzz,server_config_fuzz,job_spec_fuzz,generate_request_fuzz,tokenizer_fuzz,torch_pickle_fuzz}

/usr/bin/python3 - "$C/safetensors_fuzz" <<'PY'
import json, struct, sys
out = sys.argv[1]
def st(tensors, meta=None):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if meta: header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data
seeds = {
    "f32": st({"w": ("F32", [2, 3], struct.pack("<6f", *range(6)))}),
    "mixed": st({"a": ("BF16", [2], b"\x80\x3f\x00\x40"), "b": ("I64", [1], struct.pack("<q", 7)),
                 "c": ("BOOL", [3], b"\x00\x01\x00"), "d": ("F16", [0], b"")},
                {"format": "pt", "linvideo": "seed"}),
    "scalar": st({"s": ("F64", [], struct.pack("<d", 1.5)), "u": ("U8", [2, 2], bytes(4))}),
}
for name, data in seeds.items():
    open(f"{out}/{name}", "wb").write(data)
PY

cat > "$C/weights_index_fuzz/index" <<'J'
{"metadata": {"total_size": 32}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
J
cat > "$C/weights_index_fuzz/missing_tensor" <<'J'
{"weight_map": {"a": "model-00001-of-00002.safetensors"}}
J

for m in default default-4step; do cp "models/$m/model_index.json" "$C/model_config_fuzz/$m-model_index.json"; done
for c in transformer text_encoder vae; do cp "models/default/$c/config.json" "$C/model_config_fuzz/default-$c.json"; done

cat > "$C/server_config_fuzz/full.json" <<'J'
{"listen": "127.0.0.1:50051", "threads": 2, "models": {"default": "models/default"},
 "checkpoint_root": "build/checkpoints",
 "scheduler": {"max_batch": 4, "max_queue": 64, "token_budget": 0},
 "limits": {"max_cost": 0, "keep_previous_checkpoints": 1},
 "auth": {"admin_token_file": "build/admin-token", "generation": false},
 "tls": {"cert_file": "", "key_file": ""},
 "jobs": {"root": "build/jobs", "max_concurrent": 1, "max_retries": 2},
 "drain_grace_s": 30}
J
cat > "$C/server_config_fuzz/models_list.json" <<'J'
{"models": [{"name": "default", "path": "models/default"}, {"name": "fast", "path": "models/default-4step"}]}
J

spec='{"job_id": "conv1", "base": "default", "kind": "convert", "convert": {"linear_layers": 3, "select": "auto", "pinned": "", "objective": "adm", "steps": 800, "lr": 0.0001, "seed": 0, "batch": 4, "trajectories": 96, "trajectory_steps": 0, "checkpoint_every": 100}, "distill": {"timesteps": [], "steps": 0, "fake_updates": 0, "real_guidance": 0, "lr": 0, "fake_lr": 0, "seed": 0, "batch": 0, "trajectories": 0, "trajectory_steps": 0, "checkpoint_every": 0}, "output_name": "default-linvideo", "activate": true, "activate_as": "", "gate": {"prompts": "all", "seeds": 1, "steps": 0, "max_drop": {"adherence": 0.1}, "min_psnr": 0}}'
printf '\001%s' "$spec" > "$C/job_spec_fuzz/spec_json"
printf '\002{"id": "conv1", "spec": %s, "state": "running", "progress": {"stage": "convert", "step": 10, "total": 800, "fraction": 0.2, "eta_s": 60, "losses": {"gap": 0.1}, "gate_layers": [1, 2], "r": [0.5, 1.0]}, "error": "", "attempts": 1, "stage_index": 1, "base_dir": "models/default", "base_model": "default", "output_path": "", "checkpoint_version": 0, "base_scores": {}, "output_scores": {}, "created_ms": 1, "started_ms": 2, "finished_ms": 0, "disk_bytes": 0}' "$spec" > "$C/job_spec_fuzz/snapshot_json"
printf '\0030-1,3' > "$C/job_spec_fuzz/cpus"
encode() {  # MESSAGE OUT: protoc text format on stdin -> binary
  protoc --proto_path=proto --encode="$1" proto/linvideo/v1/generation.proto proto/linvideo/v1/jobs.proto > "$2"
}
{ printf '\000'; encode linvideo.v1.JobSpec /dev/stdout <<'T'; } > "$C/job_spec_fuzz/convert_proto"
job_id: "conv1" base: "default" output_name: "default-linvideo" activate: true
convert { linear_layers: 3 select: "auto" objective: "adm" steps: 800 lr: 0.0001 batch: 4 }
gate { prompts: "all" seeds: 1 max_drop { key: "adherence" value: 0.1 } }
T
{ printf '\000'; encode linvideo.v1.JobSpec /dev/stdout <<'T'; } > "$C/job_spec_fuzz/distill_proto"
job_id: "dist1" base: "default-linvideo" distill { timesteps: [1000, 750, 500, 250] steps: 300 fake_updates: 5 real_guidance: 3 lr: 0.0001 batch: 2 }
T
encode linvideo.v1.GenerateRequest "$C/generate_request_fuzz/defaults" <<'T'
prompt: "a large red circle moves to the right on a white background"
T
encode linvideo.v1.GenerateRequest "$C/generate_request_fuzz/full" <<'T'
request_id: "req-1" prompt: "a small green square moves up on a black background" negative_prompt: "blurry"
model: "default" width: 128 height: 128 frames: 33 steps: 20 guidance: 5 shift: 3 sampler: SAMPLER_UNIPC
seed: 42 fps: 16 format: OUTPUT_FORMAT_WEBM priority: PRIORITY_HIGH
T
encode linvideo.v1.GenerateRequest "$C/generate_request_fuzz/fewstep" <<'T'
prompt: "a blue triangle" steps: 4 guidance: 1 sampler: SAMPLER_FEW_STEP format: OUTPUT_FORMAT_PNG_FRAMES
T

printf '%s' "a large red circle moves to the right on a white background" > "$C/tokenizer_fuzz/plain"
printf '%s' "  Tom&#39;s  &amp; &lt;b&gt; \xe2\x80\x9cquoted\xe2\x80\x9d\xc2\xa0\xe3\x80\x80circle&#128;&#xFFFFFF; " > "$C/tokenizer_fuzz/entities"
printf '\xff\xfe invalid \xc3 utf-8 \xed\xa0\x80' > "$C/tokenizer_fuzz/invalid_utf8"
# torch_pickle_fuzz: the data.pkl of torch.save checkpoints (Debian's python3-torch), protocols 2
# and 4, with storage keys 0-9 (the fuzz target's records hold 64 bytes each).
/usr/bin/python3 - "$C/torch_pickle_fuzz" <<'PY'
import collections, io, sys, zipfile
import torch
out = sys.argv[1]
sd = collections.OrderedDict()
sd["blocks.0.weight"] = torch.zeros(2, 4)
sd["blocks.0.bias"] = torch.zeros(3, dtype=torch.bfloat16)
sd["steps"] = torch.zeros(2, dtype=torch.int64)
sd["column"] = torch.zeros(4, 4)[:, 1]
sd["tied"] = sd["blocks.0.weight"]
sd._metadata = collections.OrderedDict([("", {"version": 1})])
seeds = {
    "state_dict_p2": (sd, 2),
    "state_dict_p4": (sd, 4),
    "wrapped": ({"state_dict": {"w": torch.zeros(2), "p": torch.nn.Parameter(torch.zeros(3))},
                 "epoch": 3, "lr": 0.5, "name": "x", "flags": [True, None]}, 2),
}
for name, (obj, protocol) in seeds.items():
    buf = io.BytesIO()
    torch.save(obj, buf, pickle_protocol=protocol)
    with zipfile.ZipFile(buf) as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
        open(f"{out}/{name}", "wb").write(z.read(pkl))
PY

echo "seeds: $(find "$C" -type f | wc -l) files, $(du -sh "$C" | cut -f1)"

#!/usr/bin/env bash
# Parity of linvideo against the official Wan 2.1 code (dev-time; needs Debian's python3-torch).
#   tests/parity/run.sh WAN2.1_CHECKOUT [BUILD_DIR]
# WAN2.1_CHECKOUT: github.com/Wan-Video/Wan2.1 as a work tree or a bare git dir. The official
# modules are read from it into a temp dir at run time; nothing of them is stored in this repo.
# DiT: the official WanModel on 3 random tiny configs -> `linvideo-model forward --component dit`
# on the same weights/inputs (official config.json + safetensors) -> relative error printed.
# T5: the official T5Encoder cases are written and core_models_t5_parity_test is run on them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$1
build=$(cd "${2:-$here/../../build}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
official() {  # official() FILE: wan/modules/FILE from the checkout
  if [ -f "$repo/wan/modules/$1" ]; then cat "$repo/wan/modules/$1"; else git -C "$repo" show "HEAD:wan/modules/$1"; fi
}
ref=$work/ref
mkdir -p "$ref/wan/modules" "$ref/wanmods"
cp -r "$here/stubs/diffusers" "$ref/"
touch "$ref/wan/__init__.py" "$ref/wan/modules/__init__.py" "$ref/wanmods/__init__.py"
official model.py > "$ref/wan/modules/model.py"
cp "$here/stubs/wan_modules/attention.py" "$ref/wan/modules/"   # exact fp64 softmax attention
official t5.py > "$ref/wanmods/t5.py"
cp "$here/stubs/wan_modules/tokenizers.py" "$ref/wanmods/"

export LINVIDEO_PARITY_REF=$ref
for v in a b c; do
  d=$work/dit_$v
  /usr/bin/python3 "$here/dit_parity.py" "$d" "$v"
  mkdir -p "$d/model"
  cp "$d/config.json" "$d/model/"
  cp "$d/weights.safetensors" "$d/model/diffusion_pytorch_model.safetensors"
  "$build/tools/linvideo-model" forward --model "$d/model" --component dit \
    --inputs "$d/inputs.safetensors" --output "$d/linvideo_out.safetensors" >/dev/null
  /usr/bin/python3 "$here/dit_parity.py" compare "$d"
done

PYTHONPATH=$ref /usr/bin/python3 "$here/t5_parity.py" "$work/t5"
LINVIDEO_T5_PARITY_DIR=$work/t5 "$build/tests/core_models_t5_parity_test"

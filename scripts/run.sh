#!/usr/bin/env bash
# The main job: install dependencies, build, and generate a sample video with the default model
# folder. Until the trained default model ships (models/default), a random-weights tiny model is
# created with `linvideo-model init` so the whole path (text encoder, DiT sampling, VAE decode,
# H.264 encode) runs end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
MODEL=${MODEL:-models/default}
if [ ! -f "$MODEL/model_index.json" ]; then
  MODEL="$BUILD_DIR/models/tiny"
  [ -f "$MODEL/model_index.json" ] || "$BUILD_DIR/tools/linvideo-model" init --config tiny --seed 0 "$MODEL"
fi
mkdir -p out
"$BUILD_DIR/tools/linvideo-generate" --model "$MODEL" \
  --prompt "${PROMPT:-a red circle moves to the left on a white background}" \
  --frames 17 --height 64 --width 64 --steps 8 --seed 42 -o out/sample.mp4 \
  --contact-sheet out/sample.png "$@"

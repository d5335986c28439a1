#!/usr/bin/env bash
# Makes models/default-linvideo from models/default with the LinVideo conversion, data-free:
#   scripts/make-default-linvideo.sh [OUT_DIR]      (default OUT_DIR: models/default-linvideo)
# 1. trajectories: the teacher's own 50-step guided UniPC samples of 96 training-grammar prompts
#    (x_t and both branch velocities at every step, bf16, ~1.1 GB in $WORK/trajectories)
# 2. convert: selective transfer (3 of the 6 layers linear, layer 0 pinned, chosen by the gates),
#    800 steps with the ADM objective anchored by the MSE to the cached teacher velocity
#    (--adm-anchor 0.05: pure one-step ADM diverged; docs/linvideo.md says why and has the
#    measurements), then export with the lineage in model_index.json. OBJECTIVE=mse: the MSE row.
# Both stages resume when rerun. Progress: $WORK/trajectories.log, $WORK/convert/convert.log.
# Same seed and THREADS -> identical files. Measured on the 2-core machine: docs/linvideo.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-models/default-linvideo}
BASE=${BASE:-models/default}
WORK=${WORK:-build/make-default-linvideo}
THREADS=${THREADS:-2}
BUILD_DIR=${BUILD_DIR:-build}
BIN="$BUILD_DIR/tools/linvideo-train"
[ -x "$BIN" ] || { scripts/install-deps.sh && scripts/build.sh; }
mkdir -p "$WORK"
"$BIN" trajectories --model "$BASE" --out "$WORK/trajectories" --videos 96 --batch 8 \
  --shard-videos 32 --seed 0 --threads "$THREADS" | tee -a "$WORK/trajectories.log"
"$BIN" convert --base "$BASE" --cache "$WORK/trajectories" --work "$WORK/convert" --out "$OUT" \
  --linear-layers 3 --select auto --objective "${OBJECTIVE:-adm}" --adm-anchor 0.05 --steps "${STEPS:-800}" \
  --batch 4 --seed 0 --threads "$THREADS"
echo "converted model in $OUT"

#!/usr/bin/env bash
# Makes models/default-4step from models/default-linvideo with DMD2 (4-step distillation), data-free:
#   scripts/make-default-4step.sh [OUT_DIR]      (default OUT_DIR: models/default-4step)
# 1. prompts: a trajectory cache of the base with 2 sampling steps per video (distillation reads
#    only the prompts' embeddings and the latent shape from it, never a video; seconds, ~10 MB)
# 2. distill: generator, real score (the frozen base, guidance REAL_GUIDANCE) and fake score,
#    FAKE_UPDATES fake-score updates per generator update, backward simulation over the 4 steps
#    [1000, 750, 500, 250] (shifted by the base's serving shift), EMA export with the fewstep
#    sampler declared in model_index.json and the lineage (docs/linvideo.md). The shipped model:
#    900 generator updates at lr 1e-4 (generator and fake score), ~67 min of training alone
#    (4.3 s per update on 2 cores; made in three sittings of 300, which resume byte for byte).
# Both stages resume when rerun. Progress: $WORK/distill/distill.log. Same seed and THREADS ->
# identical files. Measured on the 2-core machine: docs/linvideo.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-models/default-4step}
BASE=${BASE:-models/default-linvideo}
WORK=${WORK:-build/make-default-4step}
THREADS=${THREADS:-2}
BUILD_DIR=${BUILD_DIR:-build}
BIN="$BUILD_DIR/tools/linvideo-train"
[ -x "$BIN" ] || { scripts/install-deps.sh && scripts/build.sh; }
mkdir -p "$WORK"
"$BIN" trajectories --model "$BASE" --out "$WORK/prompts" --videos "${PROMPTS:-256}" --steps 2 \
  --batch 8 --shard-videos 64 --seed 1 --threads "$THREADS" | tee -a "$WORK/prompts.log"
"$BIN" distill --base "$BASE" --cache "$WORK/prompts" --work "$WORK/distill" --out "$OUT" \
  --timesteps 1000,750,500,250 --steps "${STEPS:-900}" --batch "${BATCH:-2}" \
  --fake-updates "${FAKE_UPDATES:-5}" --real-guidance "${REAL_GUIDANCE:-3}" --lr "${LR:-1e-4}" \
  --fake-lr "${FAKE_LR:-1e-4}" --seed 0 --log-every 10 --checkpoint-every 25 \
  --threads "$THREADS" ${EXTRA:-}
echo "distilled model in $OUT"

#!/usr/bin/env bash
# Makes models/default-4step from models/default-linvideo with DMD2 (4-step distillation), data-free:
#   scripts/make-default-4step.sh [OUT_DIR]      (default OUT_DIR: models/default-4step)
# 1. prompts: a trajectory cache of the base with 2 sampling steps per video (distillation reads
#    only the prompts' embeddings and the latent shape from it, never a video; seconds, ~10 MB)
# 2. distill: generator, real score (the frozen base with classifier-free guidance) and fake
#    score, FAKE_UPDATES fake-score updates per generator update, backward simulation over the 4
#    steps [1000, 750, 500, 250] (shifted by the base's serving shift), EMA export with the
#    fewstep sampler declared in model_index.json and the lineage (docs/linvideo.md). Two parts:
#    FIRST_STEPS generator updates with real guidance REAL_GUIDANCE, then the same run resumed to
#    STEPS updates with LATE_GUIDANCE (--allow-option-changes: the lineage's option_changes
#    records the switch and its step). The shipped model: 900 updates at guidance 3, then 200 at
#    guidance 2 (fewer stray objects; docs/linvideo.md, session 21), lr 1e-4 for the generator
#    (LATE_REAL=DIR: the second part's real score is DIR, the teacher the base was converted from)
#    and the fake score: ~82 min of training alone on 2 cores (4.3-4.6 s per update), ~84 with
#    the prompts. FIRST_STEPS >= STEPS: one part.
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
STEPS=${STEPS:-1100}
FIRST_STEPS=${FIRST_STEPS:-900}
distill() {
  "$BIN" distill --base "$BASE" --cache "$WORK/prompts" --work "$WORK/distill" \
    --timesteps 1000,750,500,250 --batch "${BATCH:-2}" --fake-updates "${FAKE_UPDATES:-5}" \
    --lr "${LR:-1e-4}" --fake-lr "${FAKE_LR:-1e-4}" --seed 0 --log-every 10 \
    --checkpoint-every 25 --threads "$THREADS" ${EXTRA:-} "$@"
}
# The step the work folder has reached (0: none); the first part is skipped once it is done.
reached() {
  local f="$WORK/distill/progress.json" s=""
  [ -f "$f" ] && s=$(sed -n 's/^ *"step": *\([0-9]*\).*/\1/p' "$f" | head -n1)
  echo "${s:-0}"
}
if [ "$FIRST_STEPS" -ge "$STEPS" ]; then
  distill --steps "$STEPS" --real-guidance "${REAL_GUIDANCE:-3}" --out "$OUT"
else
  if [ "$(reached)" -lt "$FIRST_STEPS" ]; then
    distill --steps "$FIRST_STEPS" --real-guidance "${REAL_GUIDANCE:-3}"
  fi
  distill --steps "$STEPS" --real-guidance "${LATE_GUIDANCE:-2}" ${LATE_REAL:+--real "$LATE_REAL"} \
    --allow-option-changes --out "$OUT"
fi
echo "distilled model in $OUT"

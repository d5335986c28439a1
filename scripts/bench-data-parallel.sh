#!/usr/bin/env bash
# Data-parallel training step time, measured side by side in one run: the same combined batch as
# 1 process with $THREADS threads vs $NPROC processes (`linvideo-train launch`, Gloo on loopback)
# with THREADS/NPROC threads each, so both use the same cores. Stages: the VAE (stage-1 recipe) and
# the LinVideo conversion of models/default (ADM, its recipe batch). Alternates the two set-ups
# $REPS times and prints the median s/step of each and their ratio. Run it on an idle machine
# (pause trainings with SIGSTOP); a build beside it makes the numbers meaningless.
#
#   scripts/bench-data-parallel.sh            # REPS=2 STEPS=12 THREADS=2 NPROC=2
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
TRAIN=$BUILD_DIR/tools/linvideo-train
REPS=${REPS:-2}
STEPS=${STEPS:-12}
THREADS=${THREADS:-2}
NPROC=${NPROC:-2}
PER=$((THREADS / NPROC))
[ "$PER" -ge 1 ] || { echo "THREADS must be >= NPROC" >&2; exit 2; }
WORK=$(mktemp -d /tmp/bench-dp.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# s/step of a finished run: the combined batch over the last progress line's samples/s (counted
# from the first step, so setup and cache building are excluded).
step_time() {  # LOG BATCH
  local rate
  rate=$(grep -o '[0-9.]* samples/s' "$1" | tail -1 | cut -d' ' -f1)
  awk -v b="$2" -v r="$rate" 'BEGIN { printf "%.3f", b / r }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "== teacher trajectories for the conversion (once)"
"$TRAIN" trajectories --model models/default --out "$WORK/cache" --videos 8 --steps 10 \
  --threads "$THREADS" > "$WORK/trajectories.log" 2>&1

run_stage() {  # NAME BATCH ARGS...
  local name=$1 batch=$2
  shift 2
  local one=() many=()
  for rep in $(seq "$REPS"); do
    rm -rf "$WORK/$name-1" "$WORK/$name-n"
    "$TRAIN" "$@" --work "$WORK/$name-1" --threads "$THREADS" > "$WORK/$name-1.log" 2>&1
    one+=("$(step_time "$WORK/$name-1.log" "$batch")")
    "$TRAIN" launch --nproc "$NPROC" -- "$@" --work "$WORK/$name-n" --threads "$PER" \
      > "$WORK/$name-n.log" 2>&1
    many+=("$(step_time "$WORK/$name-n.log" "$batch")")
  done
  local m1 mn
  m1=$(printf '%s\n' "${one[@]}" | median)
  mn=$(printf '%s\n' "${many[@]}" | median)
  printf '%-8s batch %-2s  1 process x %d threads: %s s/step   %d processes x %d thread(s): %s s/step   ratio %.2f\n' \
    "$name" "$batch" "$THREADS" "$m1" "$NPROC" "$PER" "$mn" "$(awk -v a="$mn" -v b="$m1" 'BEGIN { print a / b }')"
}

echo "== $REPS alternating repetitions, $STEPS steps each"
run_stage vae 4 vae --steps "$STEPS" --batch 4 --log-every "$STEPS"
run_stage convert 4 convert --base models/default --cache "$WORK/cache" --linear-layers 3 \
  --steps "$STEPS" --batch 4 --log-every "$STEPS"

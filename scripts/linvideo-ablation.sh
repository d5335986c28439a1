#!/usr/bin/env bash
# The LinVideo ablation table of docs/linvideo.md on the shapes world, 3 of 6 layers linear:
#   scripts/linvideo-ablation.sh [ROWS...]     (default: every row, in the order below)
# Rows: teacher, untrained, heuristic, deep, auto-mse (trained with the MSE objective), auto-adm
# (pure ADM, --adm-anchor 0), auto-adm-anchor (the shipped model: ADM + the MSE anchor,
# --adm-anchor $ADM_ANCHOR; docs/linvideo.md says why).
# Every trained row uses the same
# trajectory cache (make-default-linvideo.sh's), seed and step budget; every row is evaluated on the
# same prompts and SEEDS fixed seeds (50-step UniPC, guidance 5) with fidelity against the
# teacher's saved videos. Each finished step is kept in $WORK and skipped on a rerun, so the
# table can be built over several sittings; the table goes to $WORK/table.md.
# Cost on the 2-core machine (session 20, nothing else running): ~9 min per 100-video evaluation,
# 14-17 min per 800-step conversion on fixed layers, ~27 min with auto selection (the gates keep both
# branches for 75% of the run). Run nothing else meanwhile: s/video is measured here.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-build/linvideo-ablation}
BASE=${BASE:-models/default}
SHIPPED=${SHIPPED:-models/default-linvideo}
CACHE=${CACHE:-build/make-default-linvideo/trajectories}
SEEDS=${SEEDS:-5}
STEPS=${STEPS:-800}
THREADS=${THREADS:-2}
BUILD_DIR=${BUILD_DIR:-build}
TRAIN="$BUILD_DIR/tools/linvideo-train"
EVAL="$BUILD_DIR/tools/linvideo-eval"
MODEL="$BUILD_DIR/tools/linvideo-model"
[ -x "$TRAIN" ] || { scripts/install-deps.sh && scripts/build.sh; }
mkdir -p "$WORK"
ROWS=("$@")
ADM_ANCHOR=${ADM_ANCHOR:-0.05}
[ ${#ROWS[@]} -gt 0 ] || ROWS=(teacher untrained heuristic deep auto-mse auto-adm auto-adm-anchor)

# The shipped layers (from the shipped model's lineage): the untrained row converts the same ones.
shipped_layers() {
  /usr/bin/python3 -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["linvideo_conversion"]["linear"])))' \
    "$SHIPPED/model_index.json"
}

evaluate() {  # NAME MODEL_DIR
  local out="$WORK/eval-$1"
  [ -f "$out/eval.json" ] && return 0
  local extra=(--reference-videos "$WORK/eval-teacher/videos.safetensors")
  [ "$1" = teacher ] && extra=(--save-videos)
  "$EVAL" run --model "$2" --out "$out" --prompts all --seeds "$SEEDS" --threads "$THREADS" \
    "${extra[@]}" | tee "$WORK/eval-$1.log"
}

convert() {  # NAME CONVERT_FLAGS...
  local name=$1
  shift
  [ -d "$WORK/model-$name" ] && return 0
  [ -d "$CACHE" ] || {
    echo "no trajectory cache at $CACHE: run scripts/make-default-linvideo.sh first" >&2
    exit 1
  }
  "$TRAIN" convert --base "$BASE" --cache "$CACHE" --work "$WORK/convert-$name" \
    --out "$WORK/model-$name" --linear-layers 3 --steps "$STEPS" --batch 4 --seed 0 \
    --threads "$THREADS" "$@"
}

for row in "${ROWS[@]}"; do
  [ "$row" = teacher ] || [ -f "$WORK/eval-teacher/videos.safetensors" ] || evaluate teacher "$BASE"
  case "$row" in
    teacher) evaluate teacher "$BASE" ;;
    untrained)
      [ -d "$WORK/model-untrained" ] ||
        "$MODEL" convert-attention --model "$BASE" --layers "$(shipped_layers)" --kind linear \
          --output "$WORK/model-untrained"
      evaluate untrained "$WORK/model-untrained" ;;
    # The selection rows train with the ADM recipe that stays stable (anchored); pure ADM is its
    # own row (auto-adm).
    heuristic) convert heuristic --select heuristic --objective adm --adm-anchor "$ADM_ANCHOR"
      evaluate heuristic "$WORK/model-heuristic" ;;
    deep) convert deep --select layers:3,4,5 --objective adm --adm-anchor "$ADM_ANCHOR"
      evaluate deep "$WORK/model-deep" ;;
    auto-mse) convert auto-mse --select auto --objective mse
      evaluate auto-mse "$WORK/model-auto-mse" ;;
    auto-adm) convert auto-adm --select auto --objective adm --adm-anchor 0
      evaluate auto-adm "$WORK/model-auto-adm" ;;
    auto-adm-anchor) evaluate auto-adm-anchor "$SHIPPED" ;;  # make-default-linvideo.sh's recipe
    *) echo "unknown row '$row'; rows: teacher untrained heuristic deep auto-mse auto-adm auto-adm-anchor" >&2
      exit 2 ;;
  esac
done

names=(teacher untrained heuristic deep auto-mse auto-adm auto-adm-anchor)
labels=("teacher" "untrained conversion" "heuristic + ADM" "layers 3-5 + ADM"
  "auto + MSE" "auto + ADM (pure)" "auto + ADM anchored (shipped)")
rows=""
for i in "${!names[@]}"; do
  [ -f "$WORK/eval-${names[$i]}/eval.json" ] || continue
  rows+="${rows:+,}${labels[$i]}=$WORK/eval-${names[$i]}"
done
"$EVAL" table --baseline "$WORK/eval-teacher" --rows "$rows" --out "$WORK/table.md"

#!/usr/bin/env bash
# Trains the shapes-world default model from scratch and exports it (diffusers layout):
#   scripts/train-default.sh [OUT_DIR]        (default OUT_DIR: models/default)
# Stages (each resumes from its checkpoint under $WORK, so an interrupted run continues):
#   1. prompt corpus -> word-level sentencepiece tokenizer (spm_train)
#   2. VAE (linvideo-train vae: stage 1 on short windows, stage 2 on full-length clips, stage 3
#      sets latent frame 0 apart: the DiT's cue to which frame is first)
#   3. latents, DiT + umT5 (linvideo-train dit), export
# Progress (loss, throughput, ETA) goes to $WORK/vae/train_vae.log and $WORK/dit/train_dit.log.
# Same seed and THREADS -> bit-identical weights (another thread count changes the last bits).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-models/default}
WORK=${WORK:-build/train-default}
THREADS=${THREADS:-2}
BUILD_DIR=${BUILD_DIR:-build}
BIN="$BUILD_DIR/tools/linvideo-train"
[ -x "$BIN" ] || { scripts/install-deps.sh && scripts/build.sh; }
mkdir -p "$WORK"

if [ ! -f "$WORK/spiece.model" ]; then
  "$BIN" corpus --out "$WORK/corpus.txt" --seeds 5000
  # One piece per grammar word (72 = the grammar's 69 words + <pad>, </s>, <unk>).
  (cd "$WORK" && spm_train --input=corpus.txt --model_prefix=spiece --vocab_size=72 \
    --model_type=word --pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1 --character_coverage=1.0 \
    --normalization_rule_name=identity --num_threads=1 >spm_train.log 2>&1)
fi
# Stage 1: 9-frame windows from scratch; stage 2: fine-tuned on full 33-frame clips; stage 3:
# 300 more steps with the frame-0 marker.
"$BIN" vae --work "$WORK/vae1" --threads "$THREADS"
"$BIN" vae --stage 2 --init-from "$WORK/vae1" --work "$WORK/vae" --threads "$THREADS"
"$BIN" vae --stage 3 --init-from "$WORK/vae" --work "$WORK/vae3" --threads "$THREADS"
# Reconstruction PSNR on held-out full-size clips, and a contact sheet (truth | decoded).
"$BIN" vae-check --work "$WORK/vae3" --clips 16 --sheet "$WORK/vae3/check.png" --threads "$THREADS" |
  tee "$WORK/vae3/check.txt"
"$BIN" dit --work "$WORK/dit" --vae "$WORK/vae3" --tokenizer "$WORK/spiece.model" --out "$OUT" \
  --threads "$THREADS"
echo "trained model in $OUT"

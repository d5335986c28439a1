#!/usr/bin/env bash
# The main job: install dependencies, build, and run linvideo-server on the default model folder
# (gRPC on 127.0.0.1:50051, Prometheus /metrics on 127.0.0.1:9464) in the foreground.
# The default model is the shapes-world model in models/default (trained by
# scripts/train-default.sh); MODEL=DIR serves another folder. Where models/default is missing, a
# random-weights tiny model is created with `linvideo-model init` instead. Beside it, the LinVideo
# conversion of the default model (models/default-linvideo: 3 of 6 attention layers linear, made
# by scripts/make-default-linvideo.sh, docs/linvideo.md) is served as "default-linvideo", and its
# 4-step DMD2 distillation (models/default-4step, made by scripts/make-default-4step.sh; it
# samples only its declared 4 steps, without guidance) as "default-4step".
#
# Submit'ed requests are durable: journaled with their results in $BUILD_DIR/state (STATE_DIR
# overrides), so a restart or crash runs the unfinished ones again and keeps finished results for Get
# until their TTL.
#
# Post-training jobs are on: job folders in $BUILD_DIR/jobs, outputs published under the checkpoint
# root $BUILD_DIR/checkpoints (CHECKPOINT_ROOT, JOBS_ROOT override), Admin and Jobs calls need the
# token in $BUILD_DIR/admin-token (made once). Jobs run with 1 thread at nice +10
# (--jobs.cpus=1 pins them to core 1).
#
# Then, from another terminal:
#   build/client/linvideo generate --prompt="a small red circle moves to the left on a white background" --out=out.mp4
#   build/client/linvideo --token_file=build/admin-token jobs start convert --base=default \
#       --linear_layers=3 --trajectories=16 --steps=200 --objective=mse --activate --watch
# Extra arguments are passed to linvideo-server (see `build/server/linvideo-server --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
MODEL=${MODEL:-models/default}
if [ ! -f "$MODEL/model_index.json" ]; then
  MODEL="$BUILD_DIR/models/tiny"
  [ -f "$MODEL/model_index.json" ] ||
    "$BUILD_DIR/tools/linvideo-model" init --config tiny --seed 0 "$MODEL"
fi
EXTRA_MODELS=()
LINVIDEO_MODEL=${LINVIDEO_MODEL:-models/default-linvideo}
FOURSTEP_MODEL=${FOURSTEP_MODEL:-models/default-4step}
if [ "$MODEL" = models/default ] && [ -f "$LINVIDEO_MODEL/model_index.json" ]; then
  EXTRA_MODELS+=("--model=default-linvideo=$LINVIDEO_MODEL")
fi
if [ "$MODEL" = models/default ] && [ -f "$FOURSTEP_MODEL/model_index.json" ]; then
  EXTRA_MODELS+=("--model=default-4step=$FOURSTEP_MODEL")
fi
CHECKPOINT_ROOT=${CHECKPOINT_ROOT:-$BUILD_DIR/checkpoints}
JOBS_ROOT=${JOBS_ROOT:-$BUILD_DIR/jobs}
TOKEN_FILE=${TOKEN_FILE:-$BUILD_DIR/admin-token}
STATE_DIR=${STATE_DIR:-$BUILD_DIR/state}
mkdir -p "$CHECKPOINT_ROOT" "$JOBS_ROOT" "$STATE_DIR"
if [ ! -s "$TOKEN_FILE" ]; then
  (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$TOKEN_FILE")
  echo "run.sh: made the Admin/Jobs token in $TOKEN_FILE (pass --token_file=$TOKEN_FILE to linvideo)"
else
  echo "run.sh: Admin and Jobs calls need the token in $TOKEN_FILE (linvideo --token_file=$TOKEN_FILE)"
fi
echo "run.sh: submitted requests are journaled in $STATE_DIR"
# The VAE decodes in bf16 where the CPU has AVX512-BF16 (2.1x faster than fp32, 55 dB PSNR to the
# fp32 decode: `linvideo-vae-bench`, docs/benchmarks.md); elsewhere in fp32. VAE_DTYPE overrides.
VAE_DTYPE=${VAE_DTYPE:-$(grep -qw avx512_bf16 /proc/cpuinfo && echo bf16 || echo fp32)}
exec "$BUILD_DIR/server/linvideo-server" --model="default=$MODEL" "${EXTRA_MODELS[@]}" \
  --vae_dtype="$VAE_DTYPE" \
  --checkpoint_root="$CHECKPOINT_ROOT" --jobs.root="$JOBS_ROOT" --state_dir="$STATE_DIR" \
  --auth.admin_token_file="$TOKEN_FILE" --listen="${LISTEN:-127.0.0.1:50051}" \
  --metrics.listen="${METRICS_LISTEN:-127.0.0.1:9464}" "$@"

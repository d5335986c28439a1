#!/usr/bin/env bash
# GPU check: builds linvideo against a Python PyTorch's LibTorch, runs the `gpu`-labelled tests (or,
# without GoogleTest, the same parity checks via `linvideo-attention-bench --check`) and the
# attention benchmark on CUDA. Everything goes to OUT_DIR; no network access is needed.
# Budget: GPU_CHECK_BUDGET seconds overall (default 480; each step gets what is left).
# The build is full (server, client, tools; FFmpeg only if its pkg-config files are there) when
# gRPC, protobuf and prometheus-cpp are found (tests/gpu/fetch-debs.sh carries them), else
# core-only (core/, kernels/, benches); a failed full configure falls back to core-only.
# Stages, in this order (each env var 0/1):
#   ATTENTION (1): gpu-labelled tests, parity --check, the linear op's kernels at N = 4,096 under
#     ncu (PROFILE_LINEAR=1, when ncu is there), attention benches bf16/fp32.
#   SERVER_STAGE (1, full builds only): tests/gpu/server.sh: linvideo-server --device cuda on a tiny
#     model and a random-weight Wan 1.3B folder, `linvideo bench` 1 vs 4/8 clients, batched
#     videos vs solo ones. SERVER_BUDGET (default: what is left) caps it.
#   PIPELINE_BENCH (0): linvideo-pipeline-bench (one 832x480x81 video at the Wan 1.3B dims: 50 UniPC
#     steps CFG all softmax, 16/30 linear, 4 fewstep steps; PIPELINE_BENCH_ARGS adds flags) and,
#     with WAN_DIR, the official Wan DiT step on the same GPU (tests/gpu/official_dit_step.py).
#   NORM_ROPE_AB (0): (a)'s DiT step with the fused q/k RMSNorm + RoPE off, then on (5 steps, tiny
#     text encoder; LINVIDEO_FUSED_NORM_ROPE=0/1), and their ratio.
#   BUILD_ALL (auto): builds every target with the time left (a compile check against this
#     LibTorch, build-all.txt), then RUN_ALL_TESTS (follows BUILD_ALL) runs the whole ctest suite
#     but `deploy` (ctest-all.txt). auto: only when at least BUILD_ALL_MIN_LEFT seconds (150) are
#     left after the stages above, and running out of budget there is reported as unfinished, not
#     as a failure (1: always, and a timeout fails the run; 0: never).
# A second call on the still-warm machine reuses BUILD_DIR (ATTENTION=0 PIPELINE_BENCH=1 ...).
# Without the Debian libraries (abseil, sentencepiece, nlohmann-json, GoogleTest, gRPC ...), source
# tests/gpu/debian-deps.sh first.
#
# usage: tests/gpu/run.sh OUT_DIR     env: PYTHON (default python3), BUILD_DIR (default build-gpu),
#                                          GPU_BENCH_SIZES (default 1024,4096,16384,32760),
#                                          GPU_CHECK_BUDGET (default 480), the stage switches above
set -uo pipefail
OUT=${1:?usage: tests/gpu/run.sh OUT_DIR}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-gpu}
PY=${PYTHON:-python3}
SIZES=${GPU_BENCH_SIZES:-1024,4096,16384,32760}
END=$((SECONDS + ${GPU_CHECK_BUDGET:-480}))
left() { echo $((END - SECONDS > 5 ? END - SECONDS : 5)); }
log() { echo "[gpu-check $(date +%T)] $*" | tee -a "$OUT/summary.txt"; }
: >"$OUT/summary.txt"
status=0

nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || log "nvidia-smi failed (no driver?)"
log "$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), $(ldd --version 2>/dev/null | head -1), $(nproc) cores"
TORCH_PREFIX=$("$PY" -c 'import torch;print(torch.utils.cmake_prefix_path)' 2>"$OUT/python.txt") || {
  log "FAIL: '$PY -c import torch' failed (see python.txt)"; exit 1; }
"$PY" -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda,
"available", torch.cuda.is_available(), "cxx11abi", torch.compiled_with_cxx11_abi())' >>"$OUT/python.txt" 2>&1
log "$(tail -1 "$OUT/python.txt")"

# nvcc: PATH, the usual toolkit folder, or the pip package nvidia-cuda-nvcc.
NVCC=$(command -v nvcc || true)
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
if [ -z "$NVCC" ]; then
  NVCC=$("$PY" -c 'import nvidia.cuda_nvcc,os;print(os.path.join(list(nvidia.cuda_nvcc.__path__)[0],"bin","nvcc"))' 2>/dev/null || true)
  [ -x "$NVCC" ] || NVCC=""
fi
CUDA_ARGS=(-DLINVIDEO_WITH_CUDA=OFF)
if [ -n "$NVCC" ]; then
  ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
  CUDA_ARGS=(-DLINVIDEO_WITH_CUDA=ON -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="${ARCH:-90}")
  log "nvcc: $NVCC (arch ${ARCH:-90})"
else
  log "WARNING: no nvcc found: the fused kernel cannot be built; checks cover the composite path only"
fi

# GoogleTest is optional: without it the parity checks run through the bench's --check mode.
TESTS=OFF
PROBE=$(mktemp -d)
printf 'cmake_minimum_required(VERSION 3.16)\nproject(p CXX)\nfind_package(GTest REQUIRED)\n' >"$PROBE/CMakeLists.txt"
cmake -S "$PROBE" -B "$PROBE/b" >/dev/null 2>&1 && TESTS=ON
rm -rf "$PROBE"
log "GoogleTest found: $TESTS"
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)

configure() {  # CORE_ONLY FFMPEG
  timeout "$(left)" cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DLINVIDEO_CORE_ONLY="$1" -DLINVIDEO_WITH_FFMPEG="$2" -DLINVIDEO_BUILD_TESTS=$TESTS \
    -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" "${CUDA_ARGS[@]}" >"$OUT/configure.txt" 2>&1
}
# FFmpeg only where its pkg-config files are (it is too large to carry: tests/gpu/fetch-debs.sh).
# GPU_FFMPEG=OFF forces it off (a dry run on a machine that has FFmpeg).
FFMPEG=OFF
PKGC=${PKG_CONFIG:-pkg-config}
[ "${GPU_FFMPEG:-auto}" = auto ] && "$PKGC" --exists libavcodec libavformat libavutil libswscale \
  2>/dev/null && FFMPEG=ON
FULL=0
# Full when a stage needs it or BUILD_DIR already is full (a second call must not reconfigure it).
if [ "${SERVER_STAGE:-1}" = 1 ] || [ "${BUILD_ALL:-0}" = 1 ] ||
  grep -q "LINVIDEO_CORE_ONLY:BOOL=OFF" "$BUILD/CMakeCache.txt" 2>/dev/null; then
  log "configure full build ($BUILD, FFmpeg $FFMPEG)"
  if configure OFF "$FFMPEG"; then
    FULL=1
  else
    cp "$OUT/configure.txt" "$OUT/configure-full.txt"
    log "full configure failed (see configure-full.txt): $(grep -m1 -E "Could not|not found|Error" "$OUT/configure-full.txt")"
    log "falling back to core-only; the server stage cannot run"
  fi
fi
if [ $FULL = 0 ]; then
  log "configure core-only ($BUILD)"
  configure ON OFF || { log "FAIL: configure (see configure.txt)"; exit 1; }
fi
grep -E "linvideo:" "$OUT/configure.txt" | tee -a "$OUT/summary.txt"

BENCH="$BUILD/bench/linvideo-attention-bench"
if [ "${ATTENTION:-1}" = 1 ]; then
  TARGETS=(linvideo-attention-bench)
  [ "$TESTS" = ON ] && TARGETS+=(kernels_linear_attention_gpu_test kernels_linear_attention_test
    kernels_cuda_stream_gpu_test core_pipeline_text_to_video_gpu_test
    core_models_rms_norm_rope_gpu_test)
  log "build ${TARGETS[*]}"
  timeout "$(left)" cmake --build "$BUILD" --target "${TARGETS[@]}" -j"$(nproc)" \
    >"$OUT/build.txt" 2>&1 || { log "FAIL: build (see build.txt)"; exit 1; }

  if [ "$TESTS" = ON ]; then
    log "ctest -L gpu"
    (cd "$BUILD" && timeout "$(left)" ctest -L gpu --output-on-failure) >"$OUT/ctest-gpu.txt" 2>&1 \
      && log "gpu tests: PASS" || { log "gpu tests: FAIL (see ctest-gpu.txt)"; status=1; }
  fi
  if timeout "$(left)" "$BENCH" --check >"$OUT/parity.txt" 2>&1; then
    log "parity --check: PASS"
  else
    log "parity --check: FAIL (see parity.txt)"; status=1
    grep -E "FAIL" "$OUT/parity.txt" | head -20 | tee -a "$OUT/summary.txt"
    # Where the failure came from, for the next session: out-of-bounds or misaligned accesses of
    # the kernels under compute-sanitizer (seen working on the Firecracker H200 machines).
    SAN=$(command -v compute-sanitizer || true)
    [ -z "$SAN" ] && [ -x /usr/local/cuda/bin/compute-sanitizer ] && SAN=/usr/local/cuda/bin/compute-sanitizer
    if [ -n "$SAN" ]; then
      log "compute-sanitizer memcheck on --check (see sanitizer.txt)"
      timeout "$(( $(left) < 120 ? $(left) : 120 ))" "$SAN" --tool memcheck --print-limit 20 \
        "$BENCH" --check >"$OUT/sanitizer.txt" 2>&1
      grep -E "ERROR SUMMARY|Invalid|Misaligned" "$OUT/sanitizer.txt" | head -8 | tee -a "$OUT/summary.txt"
    fi
    # A failing (or crashing) tensor-core kernel must not spoil the benches that follow: they run on
    # the CUDA-core kernel (the dispatch's fallback), and the summary says so.
    export LINVIDEO_LINEAR_ATTENTION_KERNEL=cuda-core
    log "benches below run with LINVIDEO_LINEAR_ATTENTION_KERNEL=cuda-core"
  fi
  # Where the linear op's time goes at N = 4,096 (issue 19: not slower than flash there; session
  # 30: 0.8x): every kernel it launches, timed by Nsight Compute (ncu; on the device image).
  NCU=$(command -v ncu || true)
  [ -z "$NCU" ] && [ -x /usr/local/cuda/bin/ncu ] && NCU=/usr/local/cuda/bin/ncu
  if [ -n "$NCU" ] && [ "${PROFILE_LINEAR:-1}" = 1 ]; then
    log "ncu: kernels of the linear op at N=4096 (see ncu-linear-4096.txt)"
    timeout "$(( $(left) < 90 ? $(left) : 90 ))" "$NCU" --metrics gpu__time_duration.sum,sm__warps_active.avg.pct_of_peak_sustained_active \
      --launch-count 40 "$BENCH" --device=cuda --dtype=bf16 --sizes=4096 --kinds=linear \
      >"$OUT/ncu-linear-4096.txt" 2>&1 || log "ncu: failed or timed out (see ncu-linear-4096.txt)"
    awk '/^  [^ ].*\(/ { name = $0; sub(/^ +(void )?/, "", name)
                          sub(/^linvideo::kernels::cuda::(<unnamed>|\(anonymous namespace\))::/, "", name)
                          sub(/ \([0-9]+, [0-9]+, [0-9]+\)x\(.*/, "", name)
                          sub(/\(.*/, "", name); name = substr(name, 1, 70) }
         /gpu__time_duration.sum/ { t = $(NF-1) " " $NF }
         /sm__warps_active/ { print "  NCU " name " " t ", warps active " $NF "%" }' \
      "$OUT/ncu-linear-4096.txt" | tail -12 | tee -a "$OUT/summary.txt"
  fi
  for dt in bf16 fp32; do
    log "attention bench cuda $dt"
    timeout "$(left)" "$BENCH" --device=cuda --dtype=$dt --sizes="$SIZES" >"$OUT/attention-bench-cuda-$dt.txt" 2>&1 \
      || { log "bench $dt: FAIL or timeout (see attention-bench-cuda-$dt.txt)"; status=1; }
    grep -E "N=[0-9]+:" "$OUT/attention-bench-cuda-$dt.txt" | tee -a "$OUT/summary.txt"
  done
fi
if [ "${SERVER_STAGE:-1}" = 1 ] && [ $FULL = 1 ]; then
  log "build linvideo-server linvideo linvideo-model"
  if timeout "$(left)" cmake --build "$BUILD" --target linvideo-server linvideo linvideo-model \
      -j"$(nproc)" >"$OUT/build-server.txt" 2>&1; then
    SERVER_BUDGET=${SERVER_BUDGET:-$(left)} PYTHON="$PY" "$ROOT/tests/gpu/server.sh" "$BUILD" "$OUT" \
      || status=1
  else
    log "FAIL: build (see build-server.txt); the server stage did not run"; status=1
    grep -E "error" "$OUT/build-server.txt" | head -10 | tee -a "$OUT/summary.txt"
  fi
fi
if [ "${PIPELINE_BENCH:-0}" = 1 ]; then
  # One video end to end at the Wan 1.3B dims (issue 19's (a), (b), (c)), then the official Wan
  # DiT forward of (a)'s step on the same GPU when WAN_DIR names a checkout or a folder made by
  # tests/gpu/prepare-wan.sh.
  log "build linvideo-pipeline-bench"
  if timeout "$(left)" cmake --build "$BUILD" --target linvideo-pipeline-bench -j"$(nproc)" \
      >"$OUT/build-pipeline-bench.txt" 2>&1; then
    log "pipeline bench cuda bf16 ${PIPELINE_BENCH_ARGS:-}"
    # shellcheck disable=SC2086  # PIPELINE_BENCH_ARGS is a list of flags
    (cd "$ROOT" && timeout "$(left)" "$BUILD/bench/linvideo-pipeline-bench" --device=cuda \
      --dtype=bf16 ${PIPELINE_BENCH_ARGS:-}) >"$OUT/pipeline-bench.txt" 2>&1 \
      || { log "pipeline bench: FAIL or timeout (see pipeline-bench.txt)"; status=1; }
    grep -E "^\(|^linvideo-pipeline-bench" "$OUT/pipeline-bench.txt" | tee -a "$OUT/summary.txt"
  else
    log "FAIL: build (see build-pipeline-bench.txt); the bench did not run"; status=1
  fi
  if [ -n "${WAN_DIR:-}" ]; then
    # The official pipeline runs CFG as two batch-1 forwards per step (cond, then uncond): its
    # step is 2 x the batch-1 median. Batch 2 is what one batched CFG forward would cost it.
    for b in 1 2; do
      log "official Wan DiT forward (bf16 autocast, 832x480x81 latents 21x60x104, batch $b)"
      PYTHONUNBUFFERED=1 timeout "$(left)" "$PY" "$ROOT/tests/gpu/official_dit_step.py" "$WAN_DIR" \
        --device cuda --dtype bf16 --batch $b --warmup 1 --reps 3 >"$OUT/official-step-b$b.txt" 2>&1 \
        || { log "official step: FAIL (see official-step-b$b.txt)"; status=1; }
      grep -E "OFFICIAL_" "$OUT/official-step-b$b.txt" | tee -a "$OUT/summary.txt"
    done
  fi
fi
if [ "${NORM_ROPE_AB:-0}" = 1 ]; then
  # The fused q/k RMSNorm + RoPE (kernels/rms_norm_rope.h) off and on: (a)'s DiT step at 832x480x81,
  # 5 steps, small text encoder, two runs of the same bench one after the other.
  log "build linvideo-pipeline-bench (fused norm+rope A/B)"
  if timeout "$(left)" cmake --build "$BUILD" --target linvideo-pipeline-bench -j"$(nproc)" \
      >"$OUT/build-norm-rope-ab.txt" 2>&1; then
    for fused in 0 1; do
      (cd "$ROOT" && LINVIDEO_FUSED_NORM_ROPE=$fused timeout "$(left)" \
        "$BUILD/bench/linvideo-pipeline-bench" --device=cuda --dtype=bf16 --cases=a --steps=5 \
        --text-encoder=tiny) >"$OUT/norm-rope-ab-$fused.txt" 2>&1 \
        || { log "norm+rope A/B ($fused): FAIL or timeout (see norm-rope-ab-$fused.txt)"; status=1; }
    done
    step() { awk '/^\(a\)/ { print $(NF-2) }' "$OUT/norm-rope-ab-$1.txt"; }
    log "NORM_ROPE_AB (a) DiT step s: composite $(step 0), fused $(step 1), ratio $(awk -v a="$(step 0)" -v b="$(step 1)" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }')x"
  else
    log "FAIL: build (see build-norm-rope-ab.txt)"; status=1
  fi
fi
BUILD_ALL_ASKED=${BUILD_ALL:-auto}
BUILD_ALL=$BUILD_ALL_ASKED
RUN_ALL_TESTS=${RUN_ALL_TESTS:-$BUILD_ALL}
MIN_LEFT=${BUILD_ALL_MIN_LEFT:-150}
if [ "$BUILD_ALL" = auto ]; then
  if [ $((END - SECONDS)) -ge "$MIN_LEFT" ]; then
    log "BUILD_ALL=auto: $((END - SECONDS))s left (>= $MIN_LEFT): building and testing everything"
  else
    log "BUILD_ALL=auto: skipped, $((END - SECONDS))s left (< $MIN_LEFT); rerun with ATTENTION=0 SERVER_STAGE=0 BUILD_ALL=1"
    BUILD_ALL=0
  fi
fi
# A stage that ran out of time: a failure when asked for (1), only unfinished in auto mode.
timed_out() {  # RC WHAT FILE
  if [ "$1" = 124 ] && [ "$BUILD_ALL_ASKED" = auto ]; then
    log "$2: not finished within the budget (see $3); not a failure in auto mode"
  else
    log "$2: FAIL$([ "$1" = 124 ] && echo " (timeout)") (see $3)"; status=1
  fi
}
if [ "$BUILD_ALL" != 0 ]; then
  log "build all targets (compile check; full build: $FULL)"
  KEEP=(-- -k); [ ${#GEN[@]} -gt 0 ] && KEEP=(-- -k 0)
  built=0
  timeout "$(left)" cmake --build "$BUILD" -j"$(nproc)" "${KEEP[@]}" >"$OUT/build-all.txt" 2>&1
  rc=$?
  if [ $rc = 0 ]; then log "build all: PASS"; built=1; else timed_out $rc "build all" build-all.txt; fi
  grep -E "error:" "$OUT/build-all.txt" | head -20 | tee -a "$OUT/summary.txt"
  if [ "$RUN_ALL_TESTS" != 0 ] && [ $built = 1 ] && [ "$TESTS" = ON ]; then
    # Every suite (deploy needs kubectl): LibTorch tests run one per core group as in CI.
    log "ctest, every test but deploy"
    (cd "$BUILD" && timeout "$(left)" ctest -LE deploy -j"$(( $(nproc) / 2 ))" --output-on-failure) \
      >"$OUT/ctest-all.txt" 2>&1
    rc=$?
    if [ $rc = 0 ]; then log "all tests: PASS"; else timed_out $rc "all tests" ctest-all.txt; fi
    grep -E "tests passed|tests failed|\(Failed\)|\(Timeout\)|\*\*\*" "$OUT/ctest-all.txt" | head -20 | tee -a "$OUT/summary.txt"
  fi
fi
log "done in $((SECONDS))s, status $status"
exit $status

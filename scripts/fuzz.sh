#!/usr/bin/env bash
# libFuzzer runs of the parsers (tests/fuzz): builds build-fuzz/ with clang (ASan + UBSan), replays
# each target's checked-in corpus (tests/fuzz/corpus/<target>), then fuzzes it for --seconds.
# New inputs go to build-fuzz/corpus/<target> (the checked-in seeds are never modified); a crash,
# leak or timeout leaves its input in build-fuzz/artifacts/ and fails the script.
#   scripts/fuzz.sh                     # every target, 10 s each (CI: the whole step < 2 min)
#   scripts/fuzz.sh --seconds 600 safetensors_fuzz   # a long run of one target
#   scripts/fuzz.sh --jobs 2 --seconds 600           # two targets at a time
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=10
JOBS=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER_TARGET=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1 (allowed: --seconds N, --jobs N, target names)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
FUZZ_DIR=${FUZZ_DIR:-build-fuzz}
export CCACHE_BASEDIR=$PWD CCACHE_SLOPPINESS=time_macros,include_file_mtime,include_file_ctime
if [ ! -f "$FUZZ_DIR/build.ninja" ]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$FUZZ_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLINVIDEO_FUZZ=ON >/dev/null
fi
cmake --build "$FUZZ_DIR" -j "${BUILD_JOBS:-2}" --target fuzz_targets
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/*_fuzz.cc; do targets+=("$(basename "$f" .cc)"); done
fi
mkdir -p "$FUZZ_DIR/artifacts" "$FUZZ_DIR/logs"
# Leaks are findings; LibTorch's and protobuf's one-time static allocations are not per-input and
# libFuzzer only reports a leak when an input's mallocs and frees do not balance.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
  local t=$1 seeds=tests/fuzz/corpus/$1 work=$FUZZ_DIR/corpus/$1 log=$FUZZ_DIR/logs/$1.log
  mkdir -p "$work" "$seeds"
  # Replay: every checked-in input must pass as it is.
  if ! "$FUZZ_DIR/tests/fuzz/$t" -runs=0 -artifact_prefix="$FUZZ_DIR/artifacts/$t-" "$seeds" \
      >"$log.replay" 2>&1; then
    echo "FAIL $t: a checked-in corpus input fails (see $log.replay)"; tail -30 "$log.replay"
    return 1
  fi
  if ! "$FUZZ_DIR/tests/fuzz/$t" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 \
      -rss_limit_mb=3072 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$FUZZ_DIR/artifacts/$t-" "$work" "$seeds" >"$log" 2>&1; then
    echo "FAIL $t: see $log"; tail -40 "$log"
    return 1
  fi
  local execs cov
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  printf 'ok   %-24s %10s execs in %ss, coverage %s edges, corpus %s inputs\n' "$t" "$execs" \
    "$SECONDS_PER_TARGET" "$cov" "$(find "$work" "$seeds" -type f | wc -l)"
}

failed=0
running=0
for t in "${targets[@]}"; do
  if [ ! -x "$FUZZ_DIR/tests/fuzz/$t" ]; then
    echo "fuzz.sh: no fuzz target '$t' (allowed: $(ls tests/fuzz/*_fuzz.cc | xargs -n1 basename | sed 's/\.cc$//' | tr '\n' ' '))" >&2
    exit 2
  fi
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
exit $failed

#!/usr/bin/env bash
# Sanitizer runs of the tests that do not go through LibTorch's heavy paths (issue 21).
#   scripts/sanitize.sh asan   # build-asan/: ASan + UBSan (gcc), the io, json, params, common,
#                              # media and server tests (scheduler, engine with the fake
#                              # executor, registry, jobs, auth, config), then the `linvideo` CLI
#                              # (ASan build) through every command against build/'s server
#   scripts/sanitize.sh tsan   # build-tsan/: TSan, the engine, scheduler, registry, request
#                              # journal, rate limiter and job manager tests; needs an abseil built
#                              # with TSan: scripts/build-tsan-absl.sh makes one in
#                              # build-absl-tsan/install (or ABSL_TSAN_PREFIX=<prefix>). Debian's
#                              # libabsl is not, so TSan cannot see absl::Mutex and reports races
#                              # on correctly locked data (the canary below shows it)
#   scripts/sanitize.sh        # asan, then tsan
# Each tree builds only those tests (and what they link). A finding fails the run: UBSan aborts
# (-fno-sanitize-recover), ASan and LSan exit non-zero, TSan reports exit 66.
set -euo pipefail
cd "$(dirname "$0")/.."
modes=("$@")
[ ${#modes[@]} -eq 0 ] && modes=(asan tsan)
export CCACHE_BASEDIR=$PWD CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime

# A counter incremented under absl::Mutex by two threads: with an uninstrumented abseil TSan
# reports a data race on it, so every TSan report about engine state would be noise.
tsan_canary() {
  local d
  d=$(mktemp -d)
  cat >"$d/canary.cc" <<'CC'
#include <thread>
#include "absl/synchronization/mutex.h"
absl::Mutex mu;
long counter = 0;
int main() {
  auto f = [] { for (int i = 0; i < 10000; ++i) { absl::MutexLock l(&mu); ++counter; } };
  std::thread a(f), b(f);
  a.join();
  b.join();
  return counter == 20000 ? 0 : 1;
}
CC
  g++ -std=c++17 -O1 -g -fsanitize=thread "$d/canary.cc" -o "$d/canary" \
    $(pkg-config --libs absl_synchronization)
  if TSAN_OPTIONS=exitcode=66 "$d/canary" >"$d/out" 2>&1; then
    echo "tsan: the system abseil is visible to TSan; set ABSL_TSAN_PREFIX to use it anyway"
  else
    echo "tsan: BLOCKED — Debian's libabsl is not built with TSan: a counter correctly locked by"
    echo "absl::Mutex is reported as a race ($(grep -m1 -o 'WARNING: ThreadSanitizer: [a-z ]*' "$d/out"))."
    echo "Build one with scripts/build-tsan-absl.sh (abseil 20220623.1 with -fsanitize=thread,"
    echo "installed to build-absl-tsan/install, which this script then uses) and rerun."
  fi
  rm -rf "$d"
}

# The `linvideo` CLI under ASan + UBSan (+ LSan) against the regular server with the fake executor:
# every command, its success and its error paths. Called from run_mode asan.
asan_client_check() {
  local server=${BUILD_DIR:-build}/server/linvideo-server cli=$PWD/build-asan/client/linvideo
  if [ ! -x "$server" ]; then
    echo "asan client: skipped ($server not built; scripts/build.sh makes it)"
    return 0
  fi
  ninja -C build-asan -j "${JOBS:-2}" linvideo
  local d failed=0
  d=$(mktemp -d)
  mkdir -p "$d/ckpt/a"
  echo '{"step_ms": 5, "item_ms": 1}' > "$d/ckpt/a/fake_model.json"
  echo token > "$d/token"
  "$server" --executor=fake --model=tiny="$d/ckpt/a" --checkpoint_root="$d/ckpt" \
    --auth.admin_token_file="$d/token" --listen=127.0.0.1:0 --port_file="$d/port" \
    --metrics.listen= > "$d/server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do [ -s "$d/port" ] && break; sleep 0.1; done
  local c=("$cli" --server="127.0.0.1:$(cat "$d/port")" --token_file="$d/token")
  # expect RC ARGS...: runs the CLI, checks its exit code and that no sanitizer spoke.
  expect() {
    local want=$1 rc=0
    shift
    "${c[@]}" "$@" > "$d/out" 2>&1 || rc=$?
    if [ "$rc" != "$want" ] || grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' "$d/out"; then
      echo "asan client: FAILED linvideo $* (rc $rc, wanted $want):"
      cat "$d/out"
      failed=1
    fi
  }
  expect 0 models --lineage
  expect 0 generate --prompt="a red ball" --steps=3 --out="$d/a.mp4"
  expect 0 generate --prompt=x --steps=2 --format=webm --out="$d/a.webm"
  expect 0 generate --prompt=x --steps=2 --frames=5 --format=png --out="$d/frames"
  expect 3 generate --prompt=x --width=33 --out="$d/x.mp4"
  expect 3 generate --prompt=x --shift=nan --out="$d/x.mp4"
  "${c[@]}" submit --prompt=y --steps=2 > "$d/id" 2>&1
  sleep 1
  expect 0 status --id="$(head -1 "$d/id")" --out="$d/b.mp4"
  expect 0 cancel --id="$(head -1 "$d/id")"
  expect 5 status --id=no-such-request
  expect 0 bench --clients=3 --requests=6 --prompt=z --steps=2
  expect 0 admin checkpoints
  expect 0 admin load --model=tiny --path=a
  expect 0 admin rollback --model=tiny
  expect 9 jobs list
  expect 64 generate
  kill $pid
  wait $pid || true
  rm -rf "$d"
  if [ "$failed" = 0 ]; then echo "asan client: 16 commands clean"; fi
  return "$failed"
}

run_mode() {
  local mode=$1 dir flags pattern
  case "$mode" in
    asan)
      dir=build-asan
      flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
      pattern='^(core_io|core_params|core_common|media|server)_[a-z0-9_]+_test$'
      export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}
      export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
      ;;
    tsan)
      if [ -z "${ABSL_TSAN_PREFIX:-}" ] && [ -f build-absl-tsan/install/lib/cmake/absl/abslConfig.cmake ]; then
        ABSL_TSAN_PREFIX=$PWD/build-absl-tsan/install
      fi
      if [ -z "${ABSL_TSAN_PREFIX:-}" ]; then
        tsan_canary
        return 2
      fi
      dir=build-tsan
      flags="-fsanitize=thread -fno-omit-frame-pointer"
      pattern='^server_(engine|scheduler|model_registry|request_journal|rate_limiter|job_manager)_test$'
      export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1:exitcode=66}
      ;;
    *) echo "sanitize.sh: unknown mode '$mode' (allowed: asan, tsan)" >&2; exit 2 ;;
  esac
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLINVIDEO_WITH_CUDA=OFF \
      ${ABSL_TSAN_PREFIX:+-DCMAKE_PREFIX_PATH="$ABSL_TSAN_PREFIX"} \
      -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_C_FLAGS="$flags" \
      -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="$flags" >/dev/null
  fi
  local targets
  ninja -C "$dir" build.ninja >/dev/null  # re-glob: tests added since the tree was configured
  targets=$(ninja -C "$dir" -t targets all | sed -n 's/^\([a-z0-9_]*_test\): .*/\1/p' |
            grep -E "$pattern" | sort -u)
  echo "== $mode: $(echo "$targets" | wc -l) test binaries in $dir"
  # shellcheck disable=SC2086
  ninja -C "$dir" -j "${JOBS:-2}" $targets
  (cd "$dir" && ctest --output-on-failure -j "${JOBS:-2}" --timeout 900 -R "$pattern")
  if [ "$mode" = asan ]; then asan_client_check; fi
}

for m in "${modes[@]}"; do run_mode "$m"; done

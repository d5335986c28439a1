#!/usr/bin/env bash
# Golden videos: serves models/default and a tiny random model (seed 1) with REPO_DIR/build's
# linvideo-server and writes OUT_DIR/sums.txt, the sha256 of a fixed set of generations (solo, a
# concurrent batch of three, no CFG, Euler + WebM, PNG frames). A refactor that must not change
# outputs runs it on a checkout of the old commit and on the new one and diffs the two sums.txt
# (a `git worktree` of the old commit shares ccache with this one). ~1 minute on 2 cores.
# Usage: scripts/golden-videos.sh REPO_DIR OUT_DIR
set -euo pipefail
repo=$1; out=$2; rm -rf "$out"; mkdir -p "$out"
b=$repo/build
"$b/tools/linvideo-model" init --config tiny --seed 1 "$out/tiny" >/dev/null
serve() {  # name model_dir
  "$b/server/linvideo-server" --model=m="$2" --listen=127.0.0.1:0 --port_file="$out/$1.port" \
      --threads=2 --scheduler.max_batch=4 --scheduler.max_queue_delay_ms=300 > "$out/$1.log" 2>&1 &
  echo $! > "$out/$1.pid"
  for i in $(seq 1 240); do [ -s "$out/$1.port" ] && break; sleep 0.5; done
  sleep 1
}
gen() {  # name args...
  local name=$1; shift
  "$b/client/linvideo" --server=127.0.0.1:$(cat "$out/$srv.port") generate --quiet "$@" --out="$out/$name" > "$out/$name.log" 2>&1
}
for srv in default tiny; do
  if [ $srv = default ]; then serve default "$repo/models/default"; shape="--steps=12"; else serve tiny "$out/tiny"; shape="--width=32 --height=32 --frames=5 --steps=3"; fi
  P="--prompt=a small red circle moves to the left on a white background"
  gen $srv-solo1.mp4 "$P" $shape --seed=1
  gen $srv-solo2.mp4 "$P" $shape --seed=2
  # concurrent: same seeds batched with a third request
  gen $srv-batch1.mp4 "$P" $shape --seed=1 & p1=$!; gen $srv-batch2.mp4 "$P" $shape --seed=2 & p2=$!
  gen $srv-batch3.mp4 "--prompt=a large blue square moves up on a black background" $shape --seed=3 & p3=$!
  wait $p1 $p2 $p3
  gen $srv-nocfg.mp4 "$P" $shape --seed=4 --guidance=1
  gen $srv-euler.webm "$P" $shape --seed=5 --sampler=euler --format=webm
  gen $srv-png "$P" $shape --seed=6 --format=png
  kill $(cat "$out/$srv.pid"); wait $(cat "$out/$srv.pid") 2>/dev/null || true
done
cd "$out" && find . -name '*.mp4' -o -name '*.webm' -o -name '*.png' | sort | xargs sha256sum > sums.txt
cat sums.txt | wc -l

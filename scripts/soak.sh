#!/usr/bin/env bash
# Soak test (issue 21; not in CI): linvideo-server on the shipped default model with a state folder
# (durable Submit), a LinVideo conversion job of that model training beside it, and linvideo-soak
# (tests/soak/soak.cc): MINUTES of mixed load from CLIENTS loopback clients (streams, submit/poll,
# cancels, disconnects, deadlines, three shapes) with a hot swap of "default" between the teacher
# and its LinVideo conversion every SWAP_S seconds. Samples the server's RSS, descriptors and p50/p99
# latency every 15 s to OUT/timeline.csv; OUT/summary.txt has the verdict (exit 0 = PASS). At the
# end the job is cancelled and the server stopped with SIGTERM (it must exit 0).
# The server is pinned to core 0 (1 thread), the job to core 1 (1 thread, nice 10).
# Env: BUILD_DIR (build), MINUTES (30), WARMUP_MIN (5), CLIENTS (3), SWAP_S (120), STEPS (8 sampling
# steps per request), OUT (a new folder under /tmp). Run it with nothing else on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
MINUTES=${MINUTES:-30}
WARMUP_MIN=${WARMUP_MIN:-5}
CLIENTS=${CLIENTS:-3}
SWAP_S=${SWAP_S:-120}
STEPS=${STEPS:-8}
WORK=$(mktemp -d /tmp/lv-soak.XXXXXX)
OUT=${OUT:-$WORK/out}
mkdir -p "$WORK/ckpt" "$WORK/jobs" "$WORK/state" "$OUT"
for m in models/default models/default-linvideo; do
  [ -f "$m/model_index.json" ] || { echo "soak needs $m (shipped with the repository)" >&2; exit 2; }
done
cp -r models/default "$WORK/ckpt/teacher"
cp -r models/default-linvideo "$WORK/ckpt/linvideo"
echo soak > "$WORK/token"
taskset -c 0 "$BUILD_DIR/server/linvideo-server" --model="default=$WORK/ckpt/teacher" \
  --checkpoint_root="$WORK/ckpt" --jobs.root="$WORK/jobs" --jobs.cpus=1 --jobs.threads=1 \
  --auth.admin_token_file="$WORK/token" --state_dir="$WORK/state" --limits.result_ttl_s=300 \
  --threads=1 --scheduler.max_queue=32 --listen=127.0.0.1:0 --port_file="$WORK/port" \
  --metrics.listen=127.0.0.1:0 --metrics.port_file="$WORK/mport" > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 600); do [ -s "$WORK/port" ] && break; sleep 0.2; done
ADDR="127.0.0.1:$(cat "$WORK/port")"
CLI=("$BUILD_DIR/client/linvideo" --server="$ADDR" --token_file="$WORK/token")
# A conversion that outlasts the soak (cancelled at the end).
"${CLI[@]}" jobs start convert --base=default --linear_layers=3 --trajectories=4 \
  --trajectory_steps=10 --steps=200000 --batch=1 --objective=mse --id=soak1 > /dev/null
echo "soak: server pid $SERVER on $ADDR, job soak1 started, output in $OUT"
set +e
"$BUILD_DIR/tests/soak/linvideo-soak" --server="$ADDR" --token_file="$WORK/token" \
  --swap_paths=teacher,linvideo --pid="$SERVER" --minutes="$MINUTES" --warmup_min="$WARMUP_MIN" \
  --clients="$CLIENTS" --swap_every_s="$SWAP_S" --steps="$STEPS" --out_dir="$OUT"
RC=$?
set -e
"${CLI[@]}" jobs get soak1 | tee "$OUT/job.txt" | head -3
"${CLI[@]}" jobs cancel soak1 > /dev/null || true
curl -s "http://127.0.0.1:$(cat "$WORK/mport")/metrics" > "$OUT/metrics.txt" || true
kill -TERM $SERVER
if wait $SERVER; then echo "server stopped cleanly"; else echo "server exit code $?"; RC=1; fi
trap - EXIT
echo "soak: $(tail -1 "$OUT/summary.txt" 2>/dev/null) (rc $RC); timeline in $OUT/timeline.csv"
exit $RC

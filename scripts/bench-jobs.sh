#!/usr/bin/env bash
# Serving beside a post-training job, measured in one run (docs/benchmarks.md):
#   A: `linvideo bench` on the default model, nothing else running;
#   B: the same bench while a LinVideo conversion job of the default model trains beside it;
#   C: the job alone (bench stopped): its training step rate without serving load;
#   A2: the bench alone again, after the job: how far the machine drifted during the run.
# Prints throughput and p50/p99 latency of A, A2 and B with B's ratio to the mean of A and A2,
# and the job's step rate in B and C with its slowdown. The server is pinned to SERVER_CPUS (default core 0, 1 thread) and the
# job to JOB_CPUS (default core 1, 1 thread, nice JOB_NICE) through --jobs.cpus.
# The job trains with the MSE objective: its ADM run diverged at step 294 and rolled back in the
# middle of phase C, which made the step rate meaningless (docs/benchmarks.md).
# Env: BUILD_DIR (build), MODEL (models/default), PHASE_S (150 s per phase), STEPS (10 sampling
# steps per bench request), CLIENTS (2). About 13 minutes. Run it with nothing else on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
MODEL=${MODEL:-models/default}
PHASE_S=${PHASE_S:-150}
STEPS=${STEPS:-10}
CLIENTS=${CLIENTS:-2}
SERVER_CPUS=${SERVER_CPUS:-0}
JOB_CPUS=${JOB_CPUS:-1}
JOB_NICE=${JOB_NICE:-10}
WORK=$(mktemp -d /tmp/lv-bench-jobs.XXXXXX)
mkdir -p "$WORK/ckpt" "$WORK/jobs"
echo bench > "$WORK/token"
taskset -c "$SERVER_CPUS" "$BUILD_DIR/server/linvideo-server" --model="default=$MODEL" \
  --checkpoint_root="$WORK/ckpt" --jobs.root="$WORK/jobs" --jobs.cpus="$JOB_CPUS" \
  --jobs.threads=1 --jobs.nice="$JOB_NICE" --auth.admin_token_file="$WORK/token" --threads=1 \
  --listen=127.0.0.1:0 --port_file="$WORK/port" --metrics.listen= > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 600); do [ -s "$WORK/port" ] && break; sleep 0.2; done
CLI=("$BUILD_DIR/client/linvideo" --server="127.0.0.1:$(cat "$WORK/port")" --token_file="$WORK/token")
BENCH=(bench --clients="$CLIENTS" --seconds="$PHASE_S" --steps="$STEPS"
       --prompt="a small red circle moves to the left on a white background")
job_step() {  # "STEP SECONDS_SINCE_EPOCH" of the job's training progress
  /usr/bin/python3 -c 'import json,sys,time; j=json.load(open(sys.argv[1])); print(j["progress"]["step"] if j["progress"]["stage"]=="convert" else -1, time.time())' "$WORK/jobs/bench1/job.json"
}

echo "== A: bench alone (${PHASE_S}s)"
A=$("${CLI[@]}" "${BENCH[@]}" | head -1); echo "$A"
"${CLI[@]}" jobs start convert --base=default --linear_layers=3 --trajectories=4 \
  --trajectory_steps=10 --steps=800 --batch=1 --objective=mse --id=bench1 > /dev/null
until [ "$(job_step | cut -d' ' -f1)" -gt 0 ]; do sleep 2; done  # trajectories done, training
echo "== B: bench with the conversion job training beside it (${PHASE_S}s)"
read -r S0 T0 < <(job_step)
B=$("${CLI[@]}" "${BENCH[@]}" | head -1); echo "$B"
read -r S1 T1 < <(job_step)
echo "== C: the job alone (${PHASE_S}s)"
sleep "$PHASE_S"
read -r S2 T2 < <(job_step)
"${CLI[@]}" jobs cancel bench1 > /dev/null
sleep 5
echo "== A2: bench alone again (${PHASE_S}s)"
A2=$("${CLI[@]}" "${BENCH[@]}" | head -1); echo "$A2"
/usr/bin/python3 - "$A" "$A2" "$B" "$S0" "$T0" "$S1" "$T1" "$S2" "$T2" <<'PY'
import re, sys
a, a2, b = sys.argv[1], sys.argv[2], sys.argv[3]
s0, t0, s1, t1, s2, t2 = map(float, sys.argv[4:])
def f(line, key):
    return float(re.search(key + r"=([0-9.]+)", line).group(1))
rb, rc = (s1 - s0) / (t1 - t0), (s2 - s1) / (t2 - t1)
print("| | alone (A) | alone after (A2) | with the job (B) | B / mean(A, A2) |")
print("|---|---|---|---|---|")
for key, unit in [("throughput", "req/s"), ("p50", "s"), ("p99", "s")]:
    va, va2, vb = f(a, key), f(a2, key), f(b, key)
    print(f"| {key} ({unit}) | {va:.3f} | {va2:.3f} | {vb:.3f} | {2 * vb / (va + va2):.3f} |")
print(f"| errors | {int(f(a, 'errors'))} | {int(f(a2, 'errors'))} | {int(f(b, 'errors'))} | |")
print()
print("| job training rate | with bench (B) | alone (C) | slowdown C / B |")
print("|---|---|---|---|")
print(f"| steps/s | {rb:.4f} ({s1 - s0:.0f} steps) | {rc:.4f} ({s2 - s1:.0f} steps) | {rc / rb:.3f} |")
PY

#!/usr/bin/env bash
# Latency of the three shipped models end to end through the server, side by side in one run
# (docs/benchmarks.md, issue 17): one server hosting default (the teacher: 50 UniPC steps,
# guidance 5), default-linvideo (the conversion, same sampler) and default-4step (the DMD2
# distillation: 4 fewstep steps, no guidance); `linvideo bench` with one client, the same prompts
# and seeds on each model, after one warm-up request per model. Prints, per model, the client's
# mean latency and the server's time split (queue, start = text encoding and initial latents,
# DiT steps, VAE decode, media encode), then the ratios of each model to the teacher.
# Env: BUILD_DIR (build), REQUESTS per prompt (3), THREADS (2), MODELS_DIR (models), VAE_DTYPE
# (fp32; bf16: the decoder in bf16, --vae_dtype).
# About 5 minutes on the 2-core machine. Run it with nothing else on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
MODELS_DIR=${MODELS_DIR:-models}
REQUESTS=${REQUESTS:-3}
THREADS=${THREADS:-2}
for m in default default-linvideo default-4step; do
  [ -f "$MODELS_DIR/$m/model_index.json" ] || { echo "missing $MODELS_DIR/$m" >&2; exit 1; }
done
WORK=$(mktemp -d /tmp/lv-bench-4step.XXXXXX)
"$BUILD_DIR/server/linvideo-server" --model="default=$MODELS_DIR/default" \
  --model="default-linvideo=$MODELS_DIR/default-linvideo" \
  --model="default-4step=$MODELS_DIR/default-4step" --threads="$THREADS" \
  --vae_dtype="${VAE_DTYPE:-fp32}" --scheduler.max_queue_delay_ms=0 --listen=127.0.0.1:0 --port_file="$WORK/port" \
  --metrics.listen= > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 600); do [ -s "$WORK/port" ] && break; sleep 0.2; done
[ -s "$WORK/port" ] || { echo "the server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }
CLI=("$BUILD_DIR/client/linvideo" --server="127.0.0.1:$(cat "$WORK/port")")
PROMPTS=("a small red circle moves to the left on a white background"
         "a large blue triangle moves up on a gray background"
         "a small green square moves to the right and a large yellow diamond stays still on a black background")
for m in default default-linvideo default-4step; do
  "${CLI[@]}" bench --model="$m" --clients=1 --requests=1 --seed=999 --prompt="${PROMPTS[0]}" \
    > /dev/null  # warm-up
  for i in "${!PROMPTS[@]}"; do
    echo "== $m, prompt $i" >&2
    "${CLI[@]}" bench --model="$m" --clients=1 --requests="$REQUESTS" --seed=$((100 * i)) \
      --prompt="${PROMPTS[$i]}" | tee -a "$WORK/$m.txt" >&2
  done
done
/usr/bin/python3 - "$WORK" <<'PY'
import re, sys
work = sys.argv[1]
keys = ["queue", "start(text)", "dit", "decode", "encode", "total"]
rows = {}
for m in ["default", "default-linvideo", "default-4step"]:
    lat, split, n = 0.0, dict.fromkeys(keys, 0.0), 0
    steps = "?"
    for line in open(f"{work}/{m}.txt"):
        b = re.search(r"ok=(\d+) errors=(\d+) wall=([\d.]+)s", line)
        if b:
            if int(b.group(2)):
                sys.exit(f"{m}: {b.group(2)} requests failed")
            ok = int(b.group(1))
            n += ok
            lat += float(b.group(3))  # one client, back to back: wall = sum of latencies
        s = re.search(r"server time per request \(mean of (\d+)\): (.*) \(model .*, (\d+) steps\)", line)
        if s:
            steps = s.group(3)
            for k, v in re.findall(r"(\S+)=([\d.]+)s", s.group(2)):
                split[k] += float(v) * int(s.group(1))
    rows[m] = (steps, lat / n, {k: v / n for k, v in split.items()}, n)
print("| model | steps | requests | client latency (mean) | queue | start (text) | DiT | VAE decode | encode | server total |")
print("|---|---|---|---|---|---|---|---|---|---|")
for m, (steps, lat, sp, n) in rows.items():
    print(f"| {m} | {steps} | {n} | {lat:.3f} s | " + " | ".join(f"{sp[k]:.3f} s" for k in keys) + " |")
t = rows["default"]
for m in ["default-linvideo", "default-4step"]:
    r = rows[m]
    print(f"{m} vs default: end to end {t[1] / r[1]:.2f}x lower, DiT {t[2]['dit'] / r[2]['dit']:.2f}x lower, "
          f"decode {t[2]['decode'] / r[2]['decode']:.2f}x")
PY

#!/usr/bin/env bash
# ctest deploy_k8s_manifests: renders deploy/k8s (base, overlays/cpu, overlays/gpu) with
# `kubectl kustomize` and checks every rendered object offline with tests/deploy/check_manifests.js
# (Kubernetes OpenAPI schemas from kubernetes-models, a strict unknown-field check through
# TypeScript, and the semantic checks listed there). Then it breaks a copy of the manifests in
# known ways, one at a time, and requires each break to be caught with the expected message, so
# the check itself is shown to fail when it should.
#
#   tests/deploy/k8s_manifests_test.sh [LINVIDEO_SERVER_BINARY]
#
# With the server binary, each variant's server.json and the pod's flags are also parsed and
# validated by linvideo-server itself (check_manifests.js, serverAcceptsCommand); with promtool
# (Debian's prometheus package), the prometheus-adapter queries as PromQL.
# Needs kubectl and tests/deploy/node_modules (scripts/install-deps.sh installs both). KUBECTL
# overrides the kubectl used; KEEP=DIR keeps the rendered manifests there.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
server=${1:-}
kubectl=${KUBECTL:-kubectl}

die() { echo "FAIL: $*" >&2; exit 1; }
command -v "$kubectl" >/dev/null || die "kubectl not found: run scripts/install-deps.sh (Debian's kubernetes-client)"
command -v node >/dev/null || die "node not found: run scripts/install-deps.sh"
[ -d "$here/node_modules/kubernetes-models" ] && [ -d "$here/node_modules/typescript" ] ||
  die "tests/deploy/node_modules is missing: run scripts/install-deps.sh (npm ci in tests/deploy)"
if [ -n "$server" ] && [ ! -x "$server" ]; then
  echo "note: $server is not built; server.json is not parsed by the server this run"
  server=""
fi
echo "kubectl: $("$kubectl" version --client 2>/dev/null | head -n 2 | tr '\n' ' ')"
echo "node: $(node --version)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A copy of deploy/k8s with the admin token file an operator would make (never a real token).
fresh_copy() {
  rm -rf "$1"
  mkdir -p "$1"
  cp -r "$root/deploy/k8s" "$1/k8s"
  rm -f "$1/k8s/base/admin-token"
  echo "test-token-not-for-use" >"$1/k8s/base/admin-token"
}

# render DIR: DIR/k8s's base and overlays into DIR/{base,cpu,gpu}.yaml, its adapter values into
# DIR/adapter.yaml. Prints kubectl's complaint and returns non-zero when one does not render.
render() {
  local dir=$1 v src
  for v in base cpu gpu; do
    src=$dir/k8s/overlays/$v
    [ "$v" = base ] && src=$dir/k8s/base
    if ! "$kubectl" kustomize "$src" >"$dir/$v.yaml" 2>"$dir/$v.err"; then
      echo "kubectl kustomize $v: $(grep -v '^# Warning' "$dir/$v.err" | head -n 3)"
      return 1
    fi
  done
  cp "$dir/k8s/prometheus-adapter/values.yaml" "$dir/adapter.yaml"
}

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
cases=()
n=0        # broken copies
passing=0  # edited copies that must still pass

fresh_copy "$tmp/committed"
if render "$tmp/committed"; then
  cases+=(--case "committed=$tmp/committed")
  [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$tmp/committed/"{base,cpu,gpu}.yaml "$KEEP/"
else
  fail "the committed manifests do not render"
fi

# edited NAME FILE SED_EXPR DIR: DIR holds a rendered copy whose FILE (under deploy/k8s) is edited
# by SED_EXPR; returns non-zero (and counts a failure) when the edit changes nothing or the copy
# does not render.
edited() {
  local name=$1 file=$2 expr=$3 dir=$4
  fresh_copy "$dir"
  cp "$dir/k8s/$file" "$dir/orig"
  sed -i -e "$expr" "$dir/k8s/$file"
  if cmp -s "$dir/orig" "$dir/k8s/$file"; then
    fail "broken test: '$expr' changes nothing in $file"
  elif ! render "$dir"; then
    fail "$name: the edited copy does not render, so the check cannot see it"
  else
    return 0
  fi
  return 1
}

# broken NAME FILE SED_EXPR EXPECTED: a copy whose FILE (under deploy/k8s) is edited by SED_EXPR
# must fail the check with a problem line containing EXPECTED.
broken() {
  local name=$1 file=$2 expr=$3 expected=$4  # NAME without "="
  n=$((n + 1))
  edited "$name" "$file" "$expr" "$tmp/case$n" &&
    cases+=(--case "$name=$tmp/case$n" --expect "$name=$expected")
}

# still_passes NAME FILE SED_EXPR: an edited copy that is still right must pass (the checks are
# not stricter than what they stand for).
still_passes() {
  local name=$1 file=$2 expr=$3
  passing=$((passing + 1))
  edited "$name" "$file" "$expr" "$tmp/pass$passing" && cases+=(--case "$name=$tmp/pass$passing")
}

broken "misspelled field" base/statefulset.yaml \
  's/^          readinessProbe:/          readinesProbe:/' "'\"readinesProbe\"' does not exist"
broken "field at the wrong level" overlays/gpu/statefulset.yaml \
  's/^      nodeSelector:/      nodeSelectors:/' "'\"nodeSelectors\"' does not exist in type 'IPodSpec'"
broken "wrong type" base/statefulset.yaml \
  's/^  replicas: 1 /  replicas: "1" /' "spec/replicas must be integer"
# Liveness: only linvideo.v1.Liveness stays SERVING while paused or draining.
live='grpc: {port: 50051, service: linvideo.v1.Liveness}'
broken "liveness on the plain gRPC health check" base/statefulset.yaml \
  "s/$live/grpc: {port: 50051}/" "livenessProbe must pass while the server is paused"
broken "liveness on the readiness name" base/statefulset.yaml \
  "s/$live/grpc: {port: 50051, service: linvideo.v1.Generation}/" \
  "livenessProbe must pass while the server is paused"
broken "liveness on a name the server does not register" base/statefulset.yaml \
  "s/$live/grpc: {port: 50051, service: linvideo.v1.Livenes}/" \
  "livenessProbe must pass while the server is paused"
broken "liveness exec that kills a paused server" base/statefulset.yaml \
  "s/$live/exec: {command: [linvideo, --timeout=8, health]}/" \
  "livenessProbe must pass while the server is paused"
broken "liveness on another port" base/statefulset.yaml \
  "s/$live/grpc: {port: 9464, service: linvideo.v1.Liveness}/" "livenessProbe checks port 9464, not 50051"
still_passes "liveness exec of linvideo health on the liveness name" base/statefulset.yaml \
  "s/$live/exec: {command: [linvideo, --timeout=8, health, --service=linvideo.v1.Liveness]}/"
still_passes "liveness exec of linvideo health that accepts NOT_SERVING" base/statefulset.yaml \
  "s/$live/exec: {command: [sh, -c, 'case \"\$(linvideo health)\" in SERVING|NOT_SERVING) exit 0;; esac; exit 1']}/"
broken "no limits" base/statefulset.yaml \
  '/^            limits: {cpu/d' "base: StatefulSet/linvideo-server container server: no resources.limits.cpu"
broken "gpu overlay without a GPU" overlays/gpu/statefulset.yaml \
  's/, nvidia.com\/gpu: "1"//' "must request and limit nvidia.com/gpu"
broken "undefined Secret" base/statefulset.yaml \
  's/secretName: linvideo-admin-token/secretName: linvideo-admin-tokn/' \
  "Secret linvideo-admin-tokn is not defined"
broken "undefined PVC" base/statefulset.yaml \
  's/claimName: linvideo-checkpoints/claimName: linvideo-checkpoint/' \
  "PVC linvideo-checkpoint is not defined"
broken "model neither in a volume nor in the image" overlays/gpu/server.json \
  's|"/models/default-4step"|"/models/default-8step"|' "/models/default-8step lies in no volume"
broken "HPA aimed elsewhere" base/hpa.yaml \
  's/kind: StatefulSet, name: linvideo-server/kind: StatefulSet, name: linvideo-sever/' \
  "scaleTargetRef apps/v1 StatefulSet/linvideo-sever is not in the render"
broken "adapter rule for another name" prometheus-adapter/values.yaml \
  's/as: "linvideo_queue_depth"/as: "linvideo_queue"/' "served by no prometheus-adapter rule"
if command -v promtool >/dev/null; then
  broken "adapter query that is not PromQL" prometheus-adapter/values.yaml \
    "s/metricsQuery: 'sum(<<.Series>>/metricsQuery: 'sum((<<.Series>>/" "the queries are not PromQL"
else
  echo "note: no promtool (Debian's prometheus package): the adapter's queries are not parsed"
fi
broken "grace shorter than the drain" base/statefulset.yaml \
  's/terminationGracePeriodSeconds: 120/terminationGracePeriodSeconds: 60/' \
  "terminationGracePeriodSeconds 60 must exceed"
broken "state_dir outside every volume" overlays/cpu/server.json \
  's|/var/lib/linvideo/state|/var/lib/linvideo-state|' "state_dir /var/lib/linvideo-state lies in no volume"
broken "WORLD_SIZE unlike completions" overlays/gpu/train-job.yaml \
  's/^  completions: 1 /  completions: 2 /' "WORLD_SIZE must equal completions (2)"
# Replicas: --replica.advertise=$(POD_NAME).lv-peers, the governing Service, connection age.
adv='--replica.advertise=$(POD_NAME).lv-peers'
broken "advertised host too long" base/statefulset.yaml \
  "s/$adv\$/$adv.default.svc/" "is 38 characters, longer than 30"
broken "HPA beyond the advertised name's limit" overlays/gpu/hpa.yaml \
  's/maxReplicas: 8 /maxReplicas: 100001 /' "ordinal 100000: 100001 replicas"
broken "advertised name under another Service" base/statefulset.yaml \
  's/^  serviceName: lv-peers/  serviceName: linvideo-server-headless/' \
  "is not the pod's DNS name under its governing Service"
broken "peers Service that hides paused pods" base/services.yaml \
  's/publishNotReadyAddresses: true/publishNotReadyAddresses: false/' \
  "needs publishNotReadyAddresses: true"
broken "client Service that lists paused pods" base/services.yaml \
  '/name: linvideo-server-headless/,/clusterIP/ s/clusterIP: None/clusterIP: None\n  publishNotReadyAddresses: true/' \
  "no headless Service lists only Ready pods"
broken "advertised name that is not the pod's" base/statefulset.yaml \
  's/fieldPath: metadata.name}/fieldPath: metadata.namespace}/' "\$(POD_NAME) is not the pod's name"
broken "advertised name without the env variable" base/statefulset.yaml \
  's/- name: POD_NAME /- name: MY_POD_NAME /' "\$(POD_NAME) is no env variable of the container"
broken "no advertised name" base/statefulset.yaml \
  "/- $adv\$/d" "no --replica.advertise"
broken "replica.advertise in server.json" overlays/cpu/server.json \
  's|^  "listen": "0.0.0.0:50051",|&\n  "replica": {"advertise": "linvideo-server-0.lv-peers"},|' \
  "gives them all the same name"
broken "another flag beside the config" base/statefulset.yaml \
  "s/- $adv\$/&\n            - --threads=2/" "--threads=2: every option belongs in server.json"
broken "no connection age" overlays/cpu/server.json \
  '/"max_connection_age_s"/d' "grpc.max_connection_age_s must be > 0"
if [ -n "$server" ]; then
  broken "unknown server option" overlays/gpu/server.json \
    's/"drain_grace_s"/"drain_grace"/' "unknown option 'drain_grace'"
  # Beyond parsing: the server's Validate() runs on the file and the pod's flags.
  broken "value the server's validation refuses" overlays/cpu/server.json \
    's/"max_batch": 4,/"max_batch": 65,/' "invalid configuration: scheduler.max_batch=65: allowed 1..64"
  broken "replicas with TLS" overlays/gpu/server.json \
    's|^  "listen": "0.0.0.0:50051",|&\n  "tls": {"cert_file": "/etc/linvideo/tls.crt", "key_file": "/etc/linvideo/tls.key"},|' \
    "invalid configuration: replica.advertise with tls.cert_file"
fi

# Without the operator's token file nothing renders (no deployment with a known or empty token).
fresh_copy "$tmp/notoken"
rm "$tmp/notoken/k8s/base/admin-token"
if out=$(render "$tmp/notoken"); then
  fail "the manifests render without deploy/k8s/base/admin-token"
else
  echo "caught: no admin token file -> $out"
fi

args=("${cases[@]}" --metrics "$root/server/metrics.cc" --dockerfile "$root/Dockerfile")
[ -f "$root/Dockerfile.cuda" ] && args+=(--dockerfile-gpu "$root/Dockerfile.cuda")
command -v promtool >/dev/null && args+=(--promtool "$(command -v promtool)")
[ -n "$server" ] && args+=(--server "$server")
node "$here/check_manifests.js" "${args[@]}" || failures=$((failures + 1))

if [ "$failures" -ne 0 ]; then
  echo "deploy_k8s_manifests: FAILED"
  exit 1
fi
echo "deploy_k8s_manifests: the manifests and $passing edited copies that are still right pass; all $n broken copies were caught"

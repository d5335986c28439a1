#!/usr/bin/env bash
# Installs the Debian 12 packages linvideo needs to build, test and run. Idempotent: packages that
# are already installed are not fetched again. --no-install-recommends matters: libtorch-dev
# recommends OpenBLAS, whose thread-local storage breaks prometheus-cpp's HTTP threads.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build ccache pkg-config git ca-certificates
  libtorch-dev libblis4-openmp libgloo-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev ffmpeg zlib1g-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev nlohmann-json3-dev
  libsentencepiece-dev sentencepiece clang-format clang-14 libclang-rt-14-dev openssl
  python3 python3-grpcio python3-grpc-tools python3-numpy prometheus
)
# The deploy/k8s checks (tests/deploy): kubectl for its built-in kustomize (Debian's
# kubernetes-client) and Node.js with npm, each only where none is on PATH already (a Node.js or
# kubectl from elsewhere owns the same paths). Debian's python3-torch writes the torch.save (.pth)
# files the checkpoint reader is tested on. Only in a full checkout: the Dockerfile's build stage
# runs this script alone.
deploy_tests="$(cd "$(dirname "$0")/.." && pwd)/tests/deploy"
if [ -f "$deploy_tests/package-lock.json" ]; then
  PKGS+=(python3-torch)
  command -v kubectl >/dev/null || PKGS+=(kubernetes-client)
  command -v node >/dev/null || PKGS+=(nodejs)
  command -v npm >/dev/null || PKGS+=(npm)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
# BLIS must be the BLAS LibTorch sees (the reference BLAS is ~40x slower).
blis=/usr/lib/x86_64-linux-gnu/blis-openmp/libblas.so.3
if [ -e "$blis" ] && [ "$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3)" != "$blis" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu "$blis"
fi
# The deploy checks' npm packages, exactly as locked (tests/deploy/package-lock.json), into the
# git-ignored tests/deploy/node_modules; again only when the lock file changed.
if [ -f "$deploy_tests/package-lock.json" ] &&
   ! cmp -s "$deploy_tests/package-lock.json" "$deploy_tests/node_modules/.installed-lock.json"; then
  (cd "$deploy_tests" && npm ci --no-audit --no-fund &&
   cp package-lock.json node_modules/.installed-lock.json)
fi

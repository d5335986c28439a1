#!/usr/bin/env bash
# Installs the Debian 12 packages linvideo needs to build, test and run. Idempotent: packages that
# are already installed are not fetched again. --no-install-recommends matters: libtorch-dev
# recommends OpenBLAS, whose thread-local storage breaks prometheus-cpp's HTTP threads.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build ccache pkg-config git ca-certificates
  libtorch-dev libblis4-openmp
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev ffmpeg
  prometheus-cpp-dev libgtest-dev libgmock-dev nlohmann-json3-dev
  libsentencepiece-dev sentencepiece clang-format clang-14 libclang-rt-14-dev openssl
  python3 python3-grpcio python3-grpc-tools python3-numpy prometheus
)
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

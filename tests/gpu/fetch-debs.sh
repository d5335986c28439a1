#!/usr/bin/env bash
# Downloads, here (a Debian 12 machine with network), the Debian packages the GPU machine lacks into
# DIR (default .devdeps), for tests/gpu/debian-deps.sh to unpack there. The GPU machine has a
# compiler, CMake, ninja, CUDA and a Python PyTorch, and no network.
#
#   core   (always): abseil, sentencepiece, nlohmann-json, GoogleTest + GoogleMock, pkgconf -> core/, kernels/
#   server (SERVER=1, the default): gRPC, protobuf (+ protoc, grpc_cpp_plugin), prometheus-cpp, zlib
#          -> the server, the client and every other target, built without FFmpeg
#          (LINVIDEO_WITH_FFMPEG=OFF: FFmpeg's Debian closure is ~114 MiB, over what a call carries)
#
# Every package's dependencies are followed (apt-cache depends --recurse), minus the C/C++
# toolchain and C library any such machine has (BASE below). Prints the total size: the whole
# carried tree must stay under 64 MiB.
#
# usage: tests/gpu/fetch-debs.sh [DIR]        env: SERVER (default 1)
set -euo pipefail
DIR=${1:-.devdeps}
CORE=(libabsl-dev libsentencepiece-dev nlohmann-json3-dev libgtest-dev libgmock-dev googletest pkgconf)
SERVER_PKGS=(libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  prometheus-cpp-dev zlib1g-dev)
# Present wherever a C++ compiler runs; carrying them would shadow the machine's own C library.
BASE='^(libc6|libc6-dev|libc-dev-bin|linux-libc-dev|libcrypt1|libcrypt-dev|libgcc-s1|libstdc\+\+6|gcc-[0-9]+-base|zlib1g|libnsl2|libnsl-dev|libtirpc3|libtirpc-dev|libtirpc-common|rpcsvc-proto|debconf|perl-base|dpkg|tar)$'
PKGS=("${CORE[@]}")
[ "${SERVER:-1}" = 1 ] && PKGS+=("${SERVER_PKGS[@]}")
mapfile -t ALL < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "${PKGS[@]}" | grep -v '^[ <]' | sort -u | grep -Ev "$BASE")
mkdir -p "$DIR"
(cd "$DIR" && apt-get download "${ALL[@]}" >/dev/null)
echo "fetch-debs: ${#ALL[@]} packages in $DIR, $(du -sm "$DIR" | cut -f1) MiB"

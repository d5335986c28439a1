#!/usr/bin/env bash
# Builds abseil with ThreadSanitizer for `scripts/sanitize.sh tsan` (issue 21): Debian's libabsl is
# not instrumented, so TSan cannot see absl::Mutex and reports correctly locked data as racy.
#   scripts/build-tsan-absl.sh [ABSEIL_SOURCE_DIR]
# ABSEIL_SOURCE_DIR: abseil-cpp 20220623.1, the version Debian 12 ships (e.g. `git clone -b
# 20220623.1 https://github.com/abseil/abseil-cpp`, or `apt-get source abseil` where deb-src is
# configured). Default: the source package, fetched with apt-get into build-absl-tsan/src.
# The copy gets Debian's options (absl's own any/optional/string_view/variant, hardened) so the
# project compiles against it unchanged, but its own inline namespace (lvtsan): gRPC keeps using
# Debian's libabsl beside it without a symbol clash. Installs to build-absl-tsan/install, where
# scripts/sanitize.sh finds it (or set ABSL_TSAN_PREFIX). ~6 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$PWD/build-absl-tsan
SRC=${1:-}
if [ -z "$SRC" ]; then
  mkdir -p "$OUT/src"
  (cd "$OUT/src" && apt-get source abseil >/dev/null) || {
    echo "build-tsan-absl.sh: apt-get source abseil failed (no deb-src in the apt sources?);" \
      "pass an abseil-cpp 20220623.1 checkout instead" >&2
    exit 2
  }
  SRC=$(find "$OUT/src" -maxdepth 1 -type d -name 'abseil-*' | head -1)
fi
[ -f "$SRC/absl/base/options.h" ] || { echo "no abseil source in $SRC" >&2; exit 2; }
rm -rf "$OUT/source" && mkdir -p "$OUT"
cp -r "$SRC" "$OUT/source"
sed -i -E 's/^#define ABSL_OPTION_USE_STD_(ANY|OPTIONAL|STRING_VIEW|VARIANT) [0-9]/#define ABSL_OPTION_USE_STD_\1 0/;
  s/^#define ABSL_OPTION_USE_INLINE_NAMESPACE .*/#define ABSL_OPTION_USE_INLINE_NAMESPACE 1/;
  s/^#define ABSL_OPTION_INLINE_NAMESPACE_NAME .*/#define ABSL_OPTION_INLINE_NAMESPACE_NAME lvtsan/;
  s/^#define ABSL_OPTION_HARDENED [0-9]/#define ABSL_OPTION_HARDENED 1/' "$OUT/source/absl/base/options.h"
flags="-fsanitize=thread -fno-omit-frame-pointer"
cmake -S "$OUT/source" -B "$OUT/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_STANDARD=17 -DABSL_PROPAGATE_CXX_STD=ON -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
  -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX="$OUT/install" \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_C_FLAGS="$flags" >/dev/null
ninja -C "$OUT/build" -j "${JOBS:-2}" install >/dev/null
echo "TSan abseil installed in $OUT/install"

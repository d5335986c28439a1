#!/usr/bin/env bash
# The whole test suite: install dependencies, build, run every CPU test (GPU tests skip themselves),
# then the fuzz targets briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
scripts/check-format.sh
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j "${JOBS:-2}" --timeout 900 "$@")
# The parsers' libFuzzer targets (clang, ASan + UBSan): replay the checked-in corpora, then 10 s
# of fuzzing each (docs/benchmarks.md "Fuzzing"; long runs: scripts/fuzz.sh --seconds 600).
scripts/fuzz.sh

#!/usr/bin/env bash
# The whole test suite: install dependencies, build, run every CPU test (GPU tests skip themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
scripts/check-format.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "${JOBS:-2}" --timeout 900 "$@"

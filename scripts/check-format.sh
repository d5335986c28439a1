#!/usr/bin/env bash
# clang-format (Google base, .clang-format) check of the C++ files changed against origin/main
# (or all tracked C++ files when there is no such ref, e.g. on a fresh clone in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "clang-format not installed; skipping"; exit 0; }
base=${FORMAT_BASE:-}
if [ -z "$base" ] && git rev-parse -q --verify origin/main >/dev/null; then base=origin/main; fi
if [ -n "$base" ]; then
  files=$(git diff --name-only --diff-filter=ACMR "$base" -- '*.cc' '*.h' '*.cu' '*.cuh')
else
  files=$(git ls-files -- '*.cc' '*.h' '*.cu' '*.cuh')
fi
bad=()
for f in $files; do
  [ -f "$f" ] || continue
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "clang-format: these files need formatting (run clang-format -i on them):"; printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "clang-format: OK"

#!/usr/bin/env bash
# clang-format (Google base, .clang-format) check of C++/CUDA files. With FORMAT_BASE=<rev> only the
# files changed since <rev> are checked (e.g. in a pre-push hook); otherwise every tracked file, which
# takes seconds and is what CI runs on its clean clone.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "clang-format not installed; skipping"; exit 0; }
if [ -n "${FORMAT_BASE:-}" ]; then
  files=$(git diff --name-only --diff-filter=ACMR "$FORMAT_BASE" -- '*.cc' '*.h' '*.cu' '*.cuh')
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
echo "clang-format: OK ($(echo "$files" | wc -w) files)"

#!/usr/bin/env bash
# Copies the one official Wan 2.1 file that tests/gpu/official_dit_step.py imports into a small
# folder that can travel to a GPU machine (about 20 KB of code plus the Apache-2.0 license).
#   tests/gpu/prepare-wan.sh WAN2.1_CHECKOUT DEST
# WAN2.1_CHECKOUT: github.com/Wan-Video/Wan2.1 as a work tree or a bare git dir (HEAD is used).
# DEST gets wan/modules/model.py, LICENSE.txt and SOURCE.txt (where it came from). No __init__.py
# is copied: the script builds empty packages itself, so the heavy wan/__init__.py never runs, and
# model.py's other imports (diffusers, wan.modules.attention) are replaced by the script.
# DEST is a build artefact: keep it out of git (e.g. .wan listed in .git/info/exclude).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 WAN2.1_CHECKOUT DEST" >&2; exit 2; }
repo=$1 dest=$2
official() {  # official() PATH: PATH from the work tree, else from the git dir's HEAD
  if [ -f "$repo/$1" ]; then cat "$repo/$1"; else git -C "$repo" show "HEAD:$1"; fi
}
mkdir -p "$dest/wan/modules"
official wan/modules/model.py >"$dest/wan/modules/model.py"
official LICENSE.txt >"$dest/LICENSE.txt"
rev=unknown  # a commit only for a work tree or bare git dir of its own (not a folder inside one)
if [ -e "$repo/.git" ] || [ "$(git -C "$repo" rev-parse --is-bare-repository 2>/dev/null)" = true ]; then
  rev=$(git -C "$repo" rev-parse HEAD)
fi
echo "github.com/Wan-Video/Wan2.1 $rev: wan/modules/model.py, LICENSE.txt" >"$dest/SOURCE.txt"
du -sh "$dest"

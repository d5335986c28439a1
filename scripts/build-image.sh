#!/usr/bin/env bash
# Builds the CPU server image (Dockerfile) with podman (or docker), from the committed tree.
#
#   scripts/build-image.sh [TAG]          TAG defaults to localhost/linvideo:cpu
#
# env:
#   ENGINE=podman|docker   default: podman if installed, else docker
#   LOCAL_BASE=1           make the Debian 12 base with debootstrap from deb.debian.org and import
#                          it as localhost/debian:12-slim (once; for machines that reach the Debian
#                          mirror but no image registry); needs root and debootstrap
#   BASE_IMAGE=IMAGE       the Dockerfile's base (default docker.io/library/debian:12-slim, or the
#                          local one above)
#   SOURCE=head|worktree   head (default): `git archive HEAD`, what is committed, nothing else;
#                          worktree: the working tree as it is (uncommitted edits included)
#   JOBS=N                 compile jobs inside the build (default 2; ~2.5 GiB of memory each)
#   MIRROR=URL             Debian mirror for debootstrap (default http://deb.debian.org/debian)
#   BUILD_FLAGS="..."      extra flags for `$ENGINE build`, e.g. where the engine may not raise
#                          rlimits: "--runtime runc --ulimit nofile=20000:20000 --ulimit nproc=32768:32768"
# The build runs at nice 19; on 2 cores it takes 30-60 minutes (ccache makes rebuilds faster).
# podman builds with --format docker: the OCI format has no HEALTHCHECK.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-localhost/linvideo:cpu}
ENGINE=${ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}
SOURCE=${SOURCE:-head}
JOBS=${JOBS:-2}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo

# A debian:12-slim look-alike: minbase bookworm, updates and security sources in deb822 form,
# security updates applied, no docs/man pages/locales (dpkg excludes them from later installs too).
make_base() {
  local dir
  dir=$(mktemp -d)
  trap '$SUDO rm -rf "$dir"' RETURN
  echo "build-image: debootstrap bookworm (minbase) from $MIRROR"
  $SUDO nice -n 19 debootstrap --variant=minbase bookworm "$dir/rootfs" "$MIRROR"
  $SUDO rm -f "$dir/rootfs/etc/apt/sources.list"
  $SUDO tee "$dir/rootfs/etc/apt/sources.list.d/debian.sources" >/dev/null <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  $SUDO tee "$dir/rootfs/etc/dpkg/dpkg.cfg.d/docker" >/dev/null <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  $SUDO tee "$dir/rootfs/etc/apt/apt.conf.d/docker-clean" >/dev/null <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  $SUDO chroot "$dir/rootfs" sh -c 'apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get -y -qq upgrade && apt-get clean'
  $SUDO sh -c "cd '$dir/rootfs' && find usr/share/doc -mindepth 1 -not -name copyright \
      -not -type d -delete && find usr/share/doc -mindepth 1 -type d -empty -delete &&
    rm -rf usr/share/man/* usr/share/info/* var/lib/apt/lists/* var/cache/apt/*.bin \
      var/cache/apt/archives/*.deb var/log/*.log var/log/apt/* tmp/* && : > etc/resolv.conf &&
    find usr/share/locale -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +"
  $SUDO tar --numeric-owner -C "$dir/rootfs" -c . |
    $ENGINE import --change 'CMD ["bash"]' - localhost/debian:12-slim
}

if [ "${LOCAL_BASE:-0}" = 1 ]; then
  BASE_IMAGE=${BASE_IMAGE:-localhost/debian:12-slim}
  $ENGINE image inspect localhost/debian:12-slim >/dev/null 2>&1 || make_base
fi
BASE_IMAGE=${BASE_IMAGE:-docker.io/library/debian:12-slim}

CONTEXT=$PWD
if [ "$SOURCE" = head ]; then
  CONTEXT=$(mktemp -d)
  trap 'rm -rf "$CONTEXT"' EXIT
  git archive HEAD | tar -x -C "$CONTEXT"
  echo "build-image: context is HEAD $(git rev-parse --short HEAD)"
elif [ "$SOURCE" != worktree ]; then
  echo "SOURCE must be head or worktree" >&2
  exit 64
fi
FORMAT=(); [ "$ENGINE" = podman ] && FORMAT=(--format docker)
echo "build-image: $ENGINE build $TAG from $BASE_IMAGE, $JOBS compile jobs"
# shellcheck disable=SC2086 # BUILD_FLAGS is a list of flags
nice -n 19 "$ENGINE" build "${FORMAT[@]}" ${BUILD_FLAGS:-} --build-arg BASE_IMAGE="$BASE_IMAGE" \
  --build-arg JOBS="$JOBS" -t "$TAG" -f "$CONTEXT/Dockerfile" "$CONTEXT"
"$ENGINE" image ls "$TAG"

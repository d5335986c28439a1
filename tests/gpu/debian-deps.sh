# Source this on a GPU machine that has LibTorch (a Python PyTorch), CUDA and CMake but not the
# Debian libraries linvideo needs (abseil, sentencepiece, nlohmann-json, GoogleTest, pkg-config;
# for the server also gRPC, protobuf, prometheus-cpp). It unpacks Debian 12 .debs from DEB_DIR
# into PREFIX (not /) and points CMake, pkg-config, the loader and PATH (last, for protoc and
# grpc_cpp_plugin) there. Fetch the .debs on a Debian 12 machine with network access:
#   tests/gpu/fetch-debs.sh .devdeps        # SERVER=0: the core-only set (~3 MB)
# usage: . tests/gpu/debian-deps.sh [DEB_DIR (.devdeps)] [PREFIX (/opt/linvideo-deps)]
_deb_dir=${1:-.devdeps}
_prefix=${2:-/opt/linvideo-deps}
mkdir -p "$_prefix"
for _deb in "$_deb_dir"/*.deb; do
  [ -e "$_deb" ] || { echo "debian-deps: no .deb files in $_deb_dir" >&2; break; }
  dpkg-deb -x "$_deb" "$_prefix" || echo "debian-deps: cannot unpack $_deb" >&2
done
_lib="$_prefix/usr/lib/x86_64-linux-gnu"
export CMAKE_PREFIX_PATH="$_prefix/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export LD_LIBRARY_PATH="$_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# After the machine's own tools: CMake finds protoc and grpc_cpp_plugin through CMAKE_PREFIX_PATH.
export PATH="$PATH:$_prefix/usr/bin"
# Debian's .pc files say prefix=/usr; the sysroot maps their -I/-L paths into PREFIX.
export PKG_CONFIG_PATH="$_lib/pkgconfig:$_prefix/usr/share/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$_prefix"
if ! command -v pkg-config >/dev/null && [ -x "$_prefix/usr/bin/pkgconf" ]; then
  export PKG_CONFIG="$_prefix/usr/bin/pkgconf"  # CMake's FindPkgConfig reads this
fi
unset _deb _deb_dir _prefix _lib

#!/usr/bin/env bash
# Installs the C library under PREFIX, in the layout cargo-c produces:
#   PREFIX/include/statebackend.h
#   PREFIX/lib/libstatebackend.so, PREFIX/lib/libstatebackend.a
#   PREFIX/lib/pkgconfig/statebackend.pc
#
# Usage: scripts/install-c.sh PREFIX
#   STATEBACKEND_LIB_DIR=dir   install libraries already built in dir (no cargo build)
#   STATEBACKEND_KEEP_DEBUG=1  keep debug line tables (the release profile's; large)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ $# -ne 1 ]; then
  echo "usage: $0 PREFIX" >&2
  exit 2
fi
mkdir -p "$1"
prefix="$(cd "$1" && pwd)"

if [ -n "${STATEBACKEND_LIB_DIR:-}" ]; then
  lib_dir="$STATEBACKEND_LIB_DIR"
else
  (cd "$root" && cargo build --release)
  lib_dir="${CARGO_TARGET_DIR:-$root/target}/release"
fi
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -1)"

install -d "$prefix/include" "$prefix/lib/pkgconfig"
install -m 644 "$root/include/statebackend.h" "$prefix/include/statebackend.h"
for lib in libstatebackend.so libstatebackend.a; do
  if [ "${STATEBACKEND_KEEP_DEBUG:-0}" = 1 ] || ! command -v strip >/dev/null; then
    install -m 644 "$lib_dir/$lib" "$prefix/lib/$lib"
  else
    strip --strip-debug -o "$prefix/lib/$lib" "$lib_dir/$lib"
  fi
done
chmod 755 "$prefix/lib/libstatebackend.so"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" \
  "$root/scripts/statebackend.pc.in" >"$prefix/lib/pkgconfig/statebackend.pc"
echo "installed statebackend $version under $prefix"

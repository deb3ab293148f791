#!/bin/sh
# Rebuilds the committed .wasm of the socket extension tests (run by
# crates/mvvm-cli/tests/sock_ext.rs). Needs Debian's clang, lld and
# wasi-libc (see test/c/build.sh). They import WAMR's socket extension
# through wasi_socket_ext.h, so they are not built natively.
set -eu
cd "$(dirname "$0")"
CC=${WASI_CC:-clang}
for src in *.c; do
    out="${src%.c}.wasm"
    echo "building $out"
    "$CC" --target=wasm32-wasi -O2 -Wall -Wextra -Wl,--strip-debug -o "$out" "$src"
done

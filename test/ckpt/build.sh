#!/bin/sh
# Rebuilds the committed .wasm of every checkpoint test program.
#
# Needs Debian's clang, lld and wasi-libc:
#   apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32
# The name section stays (traps and `-f FUNC` name functions); debug
# sections are stripped to keep the files small.
set -eu
cd "$(dirname "$0")"
CC=${WASI_CC:-clang}
for src in *.c; do
    out="${src%.c}.wasm"
    echo "building $out"
    "$CC" --target=wasm32-wasi -O2 -Wall -Wl,--strip-debug -o "$out" "$src" -lm
done

#!/bin/sh
# Rebuilds bench/wasm/*.wasm from bench/src/*.c with clang for wasm32-wasi.
#
# The .wasm files are committed, so the harness and its tests never need a
# wasm toolchain; run this after changing a workload. Needs (Debian):
#   apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32
# The flags match the native build the harness does with gcc (-O2, no FMA
# contraction) so that both builds compute the same checksums.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cc=${WASM_CC:-clang}
mkdir -p "$here/wasm"
for src in "$here"/src/*.c; do
    name=$(basename "$src" .c)
    "$cc" --target=wasm32-wasi -O2 -ffp-contract=off -Wall -Wextra -Werror \
        -Wl,--strip-debug -o "$here/wasm/$name.wasm" "$src" -lm
    echo "built wasm/$name.wasm"
done

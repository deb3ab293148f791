#!/bin/sh
# Rebuilds bench/wasm/*.wasm from bench/src/*.c with clang for wasm32-wasi.
#
# The .wasm files are committed, so the harness and its tests never need a
# wasm toolchain; run this after changing a workload. Needs (Debian):
#   apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32
# The flags match the native build the harness does with gcc (-O2, no FMA
# contraction) so that both builds compute the same checksums.
#
# The sources in $simd are built a second time with -msimd128 (clang
# auto-vectorises them to 128-bit SIMD) as wasm/NAME-simd.wasm: the
# workloads declared `"NAME-simd" simd of "NAME"` in
# harness/src/workloads.rs (the two lists must agree; the smoke test checks
# each module's target_features section). Vectorising does not change the
# results: without -ffast-math clang reassociates no float operation.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cc=${WASM_CC:-clang}
simd="gemm jacobi-2d"
mkdir -p "$here/wasm"
build() { # OUT SRC [EXTRA FLAGS...]
    out=$1 src=$2
    shift 2
    "$cc" --target=wasm32-wasi -O2 -ffp-contract=off "$@" -Wall -Wextra -Werror \
        -Wl,--strip-debug -o "$here/wasm/$out.wasm" "$here/src/$src.c" -lm
    echo "built wasm/$out.wasm"
}
for src in "$here"/src/*.c; do
    name=$(basename "$src" .c)
    build "$name" "$name"
done
for name in $simd; do
    build "$name-simd" "$name" -msimd128
done

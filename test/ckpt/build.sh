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
    # The SIMD programs: -O3 so that clang vectorizes loops on its own
    # (simd_auto.c), -msimd128 for v128 and <wasm_simd128.h> (simd_intrin.c).
    case "$src" in
    simd_*.c) flags="-O3 -msimd128" ;;
    *) flags="-O2" ;;
    esac
    echo "building $out"
    # shellcheck disable=SC2086 # $flags is a list of options
    "$CC" --target=wasm32-wasi $flags -Wall -Wl,--strip-debug -o "$out" "$src" -lm
done

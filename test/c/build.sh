#!/bin/sh
# Rebuilds the committed .wasm of every C program of the corpus.
#
# Needs Debian's clang, lld and wasi-libc (and libc++ for the C++ ones):
#   apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32 \
#       libc++-14-dev-wasm32 libc++abi-14-dev-wasm32
# (no --sysroot needed: Debian's clang finds /usr/include/wasm32-wasi).
# Debug sections are stripped to keep the files small; the name section
# stays, so traps still name functions. The native builds used as the
# oracle are made by the tests themselves (gcc), never committed.
set -eu
cd "$(dirname "$0")"
CC=${WASI_CC:-clang}
CXX=${WASI_CXX:-clang++}
for src in *.c; do
    out="${src%.c}.wasm"
    echo "building $out"
    "$CC" --target=wasm32-wasi -O2 -Wall -Wl,--strip-debug -o "$out" "$src"
done
# C++ without exceptions: preview1 has no unwinding.
for src in *.cpp; do
    out="${src%.cpp}.wasm"
    echo "building $out"
    "$CXX" --target=wasm32-wasi -std=c++17 -O2 -Wall -fno-exceptions \
        -Wl,--strip-debug -o "$out" "$src"
done

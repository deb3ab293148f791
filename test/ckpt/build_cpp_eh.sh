#!/bin/sh
# Rebuilds the C++ exception-handling test program of test/ckpt, in both
# wasm encodings of exception handling:
#   cpp_exceptions.wasm         legacy EH (try/catch/catch_all/rethrow),
#                               clang's default
#   cpp_exceptions_exnref.wasm  the exnref form (try_table/throw_ref),
#                               -mllvm -wasm-use-legacy-eh=false
# and checks that they print what the same C++ built natively prints
# when another engine is there to run them: node (V8) for the legacy form,
# wasmtime for the exnref form.
#
# Needs LLVM 22 from Debian (bookworm-security has it; clang 19 cannot
# emit the exnref form) and wasi-libc:
#   apt-get install -y clang-22 lld-22 libc++-22-dev-wasm32 \
#       libc++abi-22-dev-wasm32 libclang-rt-22-dev-wasm32 wasi-libc
# (the wasm32 libc++ packages of different LLVM versions replace each
# other: only one can be installed). Debian's wasm32 libc++abi is built
# without exceptions and there is no wasm32 libunwind, so
# cpp_eh_runtime.cpp, linked in, supplies __cxa_throw & co and the wasm
# personality call; see its header.
set -eu
cd "$(dirname "$0")"
CXX=${WASI_CXX:-clang++-22}
NATIVE_CXX=${NATIVE_CXX:-$CXX}
SRC="cpp_exceptions.cpp cpp_eh_runtime.cpp"
# -Wno-deprecated: clang 22 calls the wasm32-wasi triple deprecated (its
# new name, wasm32-wasip1, does not find Debian's wasi-libc).
FLAGS="--target=wasm32-wasi -Wno-deprecated -O2 -fwasm-exceptions -Wall -Wl,--strip-debug"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# shellcheck disable=SC2086 # $SRC and $FLAGS are lists
"$NATIVE_CXX" -O2 -Wall -o "$tmp/native" $SRC
"$tmp/native" >"$tmp/native.out"

echo "building cpp_exceptions.wasm (legacy EH)"
# shellcheck disable=SC2086
"$CXX" $FLAGS -o cpp_exceptions.wasm $SRC
echo "building cpp_exceptions_exnref.wasm (exnref EH)"
# shellcheck disable=SC2086
"$CXX" $FLAGS -mllvm -wasm-use-legacy-eh=false -o cpp_exceptions_exnref.wasm $SRC

# Node 20's V8 runs legacy EH (not exnref): an independent check of the
# legacy build and of cpp_eh_runtime.cpp.
if command -v node >/dev/null 2>&1; then
    cat >"$tmp/run.mjs" <<'EOF'
import { readFileSync } from 'node:fs';
import { WASI } from 'node:wasi';
const wasi = new WASI({ version: 'preview1', args: [], env: {} });
const mod = await WebAssembly.compile(readFileSync(process.argv[2]));
process.exitCode = wasi.start(await WebAssembly.instantiate(mod, wasi.getImportObject()));
EOF
    node --no-warnings "$tmp/run.mjs" cpp_exceptions.wasm >"$tmp/node.out"
    cmp "$tmp/native.out" "$tmp/node.out"
    echo "cpp_exceptions.wasm under node prints the native output"
fi
# Wasmtime (48 and later: -W exceptions=y) runs the exnref form only.
if command -v wasmtime >/dev/null 2>&1; then
    wasmtime run -W exceptions=y cpp_exceptions_exnref.wasm >"$tmp/wasmtime.out"
    cmp "$tmp/native.out" "$tmp/wasmtime.out"
    echo "cpp_exceptions_exnref.wasm under wasmtime prints the native output"
fi
echo "native output (the .wasm must print the same):"
cat "$tmp/native.out"

#!/usr/bin/env bash
# Runs the runtime's pure-Rust unit tests under Miri (Stacked Borrows):
# the store's ownership (`crates/mvvm-rt/src/vm_box.rs`), instantiation and
# the builtins on code-less modules, tables, layouts, relocations. Tests
# that need generated code or syscalls Miri cannot emulate (mmap of a linear
# memory reservation, mprotect, signals) skip under Miri with the reason
# printed, and fail when CI or MVVM_REQUIRE_ALL asks every test to run
# (both are forwarded into Miri's isolated environment below).
#
# Needs a nightly toolchain with the `miri` and `rust-src` components:
#   rustup component add --toolchain nightly miri rust-src
# Extra arguments go to the test binary (a test name filter, say).
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain="${MVVM_MIRI_TOOLCHAIN:-nightly}"
if ! cargo "+$toolchain" miri --version >/dev/null 2>&1; then
    echo "miri.sh: no Miri for toolchain '$toolchain';" \
        "install it with: rustup component add --toolchain $toolchain miri rust-src" >&2
    exit 2
fi
# Isolation stays on (no file system, no clock); the C entry shims are never
# called by these tests. Permissive provenance: the loader hands code
# addresses around as integers (`ModuleInner::funcs`), which become the
# `code` pointers of `VMFuncRef`s; Miri would warn about each such cast.
# MIRIFLAGS="-Zmiri-permissive-provenance -Zmiri-tree-borrows" checks under
# Tree Borrows instead of Stacked Borrows (both pass).
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-permissive-provenance} -Zmiri-env-forward=CI -Zmiri-env-forward=MVVM_REQUIRE_ALL"
exec cargo "+$toolchain" miri test -p mvvm-rt --lib -- "$@"

#!/usr/bin/env bash
# The whole test suite: unit tests, the WebAssembly spec testsuite, the C
# corpus against native builds, checkpoint everywhere, migration, the
# benchmark harness' smoke run, and the aarch64 runtime under qemu (when
# scripts/aarch64/setup.sh could install its Debian packages; otherwise it
# says "skipped" and why).
set -euo pipefail
cd "$(dirname "$0")/.."

# The CLI integration tests and the bench smoke test run the debug binaries.
cargo build --workspace --bins

# aarch64 first: the cross-ISA migration test of mvvm-cli uses the aarch64
# tools it builds. In CI (CI=true or MVVM_REQUIRE_ALL=1) a machine without
# them fails there, as every test that lacks what it needs does.
MVVM_X86_BIN="${CARGO_TARGET_DIR:-target}/debug" ./scripts/aarch64/test.sh

cargo test --workspace --no-fail-fast

# The proposal directories MVVM supports (SIMD, relaxed SIMD, tail calls,
# extended-const, exceptions, threads), at both ends of the optimisation
# range, then checkpoint everywhere over them; the aarch64 run of the same
# is in scripts/aarch64/test.sh.
PROPOSALS=proposals/simd,proposals/relaxed-simd,proposals/tail-call,proposals/extended-const,proposals/exceptions,proposals/threads
for opt in 0 3; do
  MVVM_SPEC_SUITE=$PROPOSALS MVVM_SPEC_OPT=$opt cargo test -p mvvm-rt --test spec
done
MVVM_SPEC_SUITE=$PROPOSALS cargo test -p mvvm-rt --test spec_checkpoint

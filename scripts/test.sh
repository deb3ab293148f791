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

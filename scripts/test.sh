#!/usr/bin/env bash
# The whole test suite: unit tests, the WebAssembly spec testsuite, the C
# corpus against native builds, and the benchmark harness' smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."

# The CLI integration tests and the bench smoke test run the debug binaries.
cargo build --workspace --bins
cargo test --workspace --no-fail-fast

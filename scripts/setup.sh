#!/usr/bin/env bash
# One-time set-up of a fresh machine: system packages the tests and the
# benchmarks use, and a build of the MVVM tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# gcc builds the native oracles of the C test corpus; it is on the machine
# image, but install it when missing. clang and wasi-libc are only needed to
# rebuild the committed .wasm files (test/c/build.sh, bench/build-wasm.sh).
need=()
command -v gcc >/dev/null || need+=(gcc libc6-dev)
# ip (network namespaces) for the migration test scripts/netns/downtime.sh.
command -v ip >/dev/null || need+=(iproute2)
if [ "${MVVM_SETUP_WASM_TOOLCHAIN:-0}" = 1 ]; then
  need+=(clang lld wasi-libc libclang-rt-14-dev-wasm32)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi

cargo build --release -p mvvm-cli

# The aarch64 cross toolchain and qemu-user (Debian packages), for the
# cross-ISA tests; prints "skipped" and goes on when they cannot be had.
./scripts/aarch64/setup.sh

#!/usr/bin/env bash
# Builds CRIU 4.1.1 from Debian trixie's source package into a cache
# directory and prints the path of the `criu` binary on stdout (everything
# else goes to stderr), so a caller can do `criu=$(bench/criu/build.sh)`.
#
# Why: Debian bookworm's criu 3.17 fails on recent kernels ("Unexpected rt
# vDSO area bounds"); 4.1 passes `criu check`. Only `make criu` is needed
# (no docs, no python bindings, no plugins), which takes under a minute.
#
# Usage: bench/criu/build.sh [CACHE_DIR]      (default: <repo>/target/criu)
# Environment:
#   MVVM_CRIU_NO_APT=1   never run apt-get (fail with the list of missing
#                        packages instead)
# Safe to re-run: a built binary that answers --version is reused.
# Exit status: 0 with the path printed, 1 when it cannot build (the reason
# is the last line on stderr).
set -euo pipefail

VERSION=4.1.1
ORIG=criu_${VERSION}.orig.tar.xz
# From trixie's criu_4.1.1-1.dsc (Checksums-Sha256).
ORIG_SHA256=f80a66cb3726bb2116266d4759ce3bcbfab7abdb6b6d430bf20dd41911717afe

# The minimal build dependencies of `make criu` on bookworm (found by
# building from scratch): protobuf-c for the image format (descriptor.proto
# comes from libprotobuf-dev), libcap, libnl-3 and libnet for network
# state, libuuid, pkg-config to find them. nftables, gnutls, libbsd and the docs
# are optional and left out.
DEPS=(gcc make pkg-config libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler
      libcap-dev libnl-3-dev libnet1-dev uuid-dev curl xz-utils ca-certificates)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${1:-$root/target/criu}
src=$cache/criu-$VERSION
bin=$src/criu/criu

say() { echo "criu build: $*" >&2; }
die() { echo "criu build: cannot build CRIU: $*" >&2; exit 1; }
# The archive this machine's apt uses, never an address of our own.
# shellcheck source=../../scripts/lib/debian-archive.sh
source "$root/scripts/lib/debian-archive.sh"

if [[ -x $bin ]] && "$bin" --version 2>/dev/null | grep -q "Version: $VERSION"; then
    say "reusing $bin"
    echo "$bin"
    exit 0
fi

missing=()
for p in "${DEPS[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ ${MVVM_CRIU_NO_APT:-0} == 1 ]]; then
        die "missing build packages (MVVM_CRIU_NO_APT=1): ${missing[*]}"
    fi
    if [[ $(id -u) != 0 ]]; then
        die "missing build packages and not root: apt-get install ${missing[*]}"
    fi
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
        || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y --no-install-recommends "${missing[@]}" >&2; } \
        || die "apt-get install ${missing[*]} failed"
fi

mkdir -p "$cache"
if [[ ! -f $cache/$ORIG ]] || ! echo "$ORIG_SHA256  $cache/$ORIG" | sha256sum -c --quiet - >/dev/null 2>&1; then
    archive=$(debian_archive) || die "no Debian archive found in this machine's apt sources"
    POOL=$archive/pool/main/c/criu
    say "downloading $POOL/$ORIG"
    curl -fsSL --retry 3 -o "$cache/$ORIG.part" "$POOL/$ORIG" || die "download of $POOL/$ORIG failed"
    echo "$ORIG_SHA256  $cache/$ORIG.part" | sha256sum -c --quiet - >/dev/null \
        || die "$ORIG: SHA-256 mismatch"
    mv "$cache/$ORIG.part" "$cache/$ORIG"
fi
rm -rf "$src"
tar -xJf "$cache/$ORIG" -C "$cache" || die "cannot unpack $ORIG"
[[ -d $src ]] || die "$ORIG did not unpack to $src"

say "make criu in $src (log: $cache/build.log)"
if ! nice -n 10 make -C "$src" -j"$(nproc)" criu >"$cache/build.log" 2>&1; then
    tail -n 20 "$cache/build.log" >&2
    die "make criu failed (see $cache/build.log)"
fi
"$bin" --version >/dev/null 2>&1 || die "$bin does not run"
say "built $bin"
echo "$bin"

#!/usr/bin/env bash
# Installs what the aarch64 cross build and its qemu-user test run need,
# from Debian's packages only (see docs/aarch64.md):
#
#   rustc-web, cargo-web            rustc/cargo 1.96 at /usr/bin (rustup's
#                                   toolchain here is x86-64 only and cannot
#                                   download targets)
#   libstd-rust-web-dev:arm64       the aarch64 standard library for it; it
#                                   also brings libc6:arm64, whose
#                                   /lib/ld-linux-aarch64.so.1 runs the test
#                                   binaries under qemu without -L
#   gcc-aarch64-linux-gnu           linker and C compiler (native/entry.c)
#   rust-web-clippy                 clippy for that rustc: lints the
#                                   aarch64-only code paths
#   qemu-user-static (>= 9.1)       runs the aarch64 binaries; 9.1 is the
#                                   first qemu-user with openat2, which the
#                                   WASI sandbox needs. On bookworm it comes
#                                   from bookworm-backports (added here).
#
# It also registers qemu with binfmt_misc (Debian's own
# /usr/lib/binfmt.d/qemu-aarch64.conf) when it can: then an aarch64 program
# can start another one, which the tests that re-execute themselves need
# (test.sh skips them otherwise). The registration does not survive a
# reboot; running this script again restores it.
#
# Idempotent and quiet: does nothing when everything is in place. Exits 0
# with a message when the packages cannot be had (not Debian, no apt, not
# root, no network), so that callers can go on; scripts/aarch64/test.sh then
# reports "skipped".
set -euo pipefail

say() { echo "aarch64 setup: $*"; }
skip() {
  say "skipped: $*"
  exit 0
}

QEMU_MIN=9.1
PKGS=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu rust-web-clippy)

# Whether version $1 >= $2 (dotted numbers).
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

qemu_version() {
  command -v qemu-aarch64-static >/dev/null || return 1
  qemu-aarch64-static --version | sed -n '1s/.*version \([0-9][0-9.]*\).*/\1/p'
}

qemu_ok() {
  local v
  v=$(qemu_version) || return 1
  [ -n "$v" ] && version_ge "$v" "$QEMU_MIN"
}

all_installed() {
  local p
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
  done
  [ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu/lib ] || return 1
  qemu_ok
}

# Registers qemu-aarch64 with binfmt_misc; prints why not on failure.
register_binfmt() {
  local bm=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  grep -qs '^enabled' $bm/qemu-aarch64 && return 0
  [ "$(id -u)" = 0 ] || { echo "not root"; return 1; }
  [ -f "$conf" ] || { echo "no $conf"; return 1; }
  if [ ! -e $bm/register ]; then
    mount -t binfmt_misc binfmt_misc $bm 2>/dev/null || { echo "cannot mount binfmt_misc"; return 1; }
  fi
  grep -v '^#' "$conf" | head -n1 >$bm/register 2>/dev/null || { echo "registration refused"; return 1; }
}
binfmt_note() {
  local why
  why=$(register_binfmt) || say "note: binfmt_misc not set up ($why): test.sh will skip the self-re-executing tests"
}

if all_installed; then
  binfmt_note
  say "already in place (rustc $(/usr/bin/rustc -V | cut -d' ' -f2), qemu $(qemu_version))"
  exit 0
fi

[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || skip "the cross build runs on x86-64 Linux hosts only"
command -v apt-get >/dev/null && command -v dpkg >/dev/null || skip "no apt-get/dpkg (not a Debian system)"
if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  skip "installing packages needs root (or password-less sudo)"
fi
export DEBIAN_FRONTEND=noninteractive
apt_quiet() { "${SUDO[@]}" apt-get "$@" >/tmp/mvvm-aarch64-apt.log 2>&1; }

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  "${SUDO[@]}" dpkg --add-architecture arm64
fi

# qemu-user >= 9.1: bookworm has 7.2, bookworm-backports has 10.x.
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
backports=()
if [ "$codename" = bookworm ]; then
  src=/etc/apt/sources.list.d/mvvm-bookworm-backports.sources
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # The archive this machine's apt already uses, never an address of ours.
    # shellcheck source=../lib/debian-archive.sh
    . "$(dirname "${BASH_SOURCE[0]}")/../lib/debian-archive.sh"
    archive=$(debian_archive) || skip "no Debian archive found in this machine's apt sources"
    printf '%s\n' \
      "Types: deb" \
      "URIs: $archive" \
      "Suites: bookworm-backports" \
      "Components: main" \
      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" |
      "${SUDO[@]}" tee "$src" >/dev/null
  fi
  backports=(-t bookworm-backports)
fi

apt_quiet update -q || skip "apt-get update failed (no network?), see /tmp/mvvm-aarch64-apt.log"

missing=()
for p in "${PKGS[@]}" qemu-user-static; do
  apt-cache show "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] || skip "packages not available here: ${missing[*]}"

apt_quiet install -y -q "${PKGS[@]}" ||
  skip "apt-get install failed, see /tmp/mvvm-aarch64-apt.log"
if ! qemu_ok; then
  apt_quiet install -y -q "${backports[@]}" qemu-user-static ||
    skip "cannot install qemu-user-static, see /tmp/mvvm-aarch64-apt.log"
fi
qemu_ok || skip "qemu-user-static $(qemu_version || echo '?') is older than $QEMU_MIN (no openat2)"
[ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu/lib ] ||
  skip "libstd-rust-web-dev:arm64 did not install the aarch64 std"
binfmt_note
say "ready (rustc $(/usr/bin/rustc -V | cut -d' ' -f2), qemu $(qemu_version))"

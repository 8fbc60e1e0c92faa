#!/usr/bin/env bash
# Shared by the package tests (tests/packaging/*.sh): checks that count, step timings, the
# Debian mirror this machine's apt already uses, and a chroot that is torn down safely.
# Source it.

PKG_TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
COAP_EDGE_ROOT=$(cd "$PKG_TESTS_DIR/../.." && pwd)
PKG_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/coap-edge
pkg_passed=0
pkg_failed=0

note() { echo "[$(date +%H:%M:%S)] $*"; }
pass() { pkg_passed=$((pkg_passed + 1)); echo "  ok   $*"; }
fail() { pkg_failed=$((pkg_failed + 1)); echo "  FAIL $*"; }
# check DESCRIPTION COMMAND...: one counted check.
check() {
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
# timed NAME COMMAND...: runs COMMAND, prints how long it took (for the report).
timed() {
  local name=$1 t0 rc; shift
  t0=$(date +%s)
  "$@"; rc=$?
  echo "  time $name: $(($(date +%s) - t0)) s"
  return $rc
}
# The closing line tests/run.sh and CI read.
summary() {
  echo "$pkg_passed passed, $pkg_failed failed"
  [ "$pkg_failed" = 0 ]
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# ensure_packages PKG...: install what is missing (the tests run as root on CI).
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  note "installing ${missing[*]}"
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The Debian mirror the machine uses (first Debian archive URI, not -security), as in
# cmake/fetch-sources.sh: no host name lives in the repository.
debian_mirror() {
  { grep -hE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    grep -hE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -E 's/^\s*deb\s+(\[[^]]*\]\s+)?//' | awk '{print $1}'; } |
    grep -v -- '-security' | grep -E '/debian/?$' | head -n1
}

# A UDP port on 127.0.0.1 that nothing uses right now.
free_udp_port() {
  local port used
  used=$(ss -Hnlu 2>/dev/null | awk '{print $4}' | sed -E 's/.*:([0-9]+)$/\1/')
  while :; do
    port=$((20000 + RANDOM % 40000))
    grep -qx "$port" <<<"$used" || { echo "$port"; return; }
  done
}

# hex_of STRING: the bytes of STRING in hex (keys for Debian's 4.3.1 coap-client, which takes
# -k as a string: import a printable key).
hex_of() { printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n'; }

# ---- a running agent ($agent_pid), queried as $psk_id/$psk_key on 127.0.0.1:$port ----
# psk_get CLIENT -> output of a GET of /.well-known/core, retried while the agent starts.
psk_get() {
  local client=$1 i out
  for i in 1 2 3 4 5 6 7 8 9 10; do
    out=$("$client" -B 3 -u "$psk_id" -k "$psk_key" "coaps://127.0.0.1:$port/.well-known/core" 2>&1)
    grep -q '</status>' <<<"$out" && break
    sleep 0.5
  done
  printf '%s\n' "$out"
}

stop_agent() { # -> 0 if the agent exits 0 on SIGTERM within 10 s
  local rc
  kill -TERM "$agent_pid" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$agent_pid" 2>/dev/null && { kill -KILL "$agent_pid"; wait "$agent_pid"; return 1; }
  wait "$agent_pid"; rc=$?
  return $rc
}

# ---- chroot with /proc and /dev, never removed while something is mounted in it ----
chroot_mounts=()
chroot_mount() { # root
  local root=$1
  mount -t proc proc "$root/proc" && chroot_mounts+=("$root/proc")
  mount --bind /dev "$root/dev" && chroot_mounts+=("$root/dev")
  mount -t tmpfs -o mode=0755 tmpfs "$root/run" && chroot_mounts+=("$root/run")
  cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
}
chroot_umount() {
  local i
  for ((i = ${#chroot_mounts[@]} - 1; i >= 0; i--)); do
    umount "${chroot_mounts[i]}" 2>/dev/null || umount -l "${chroot_mounts[i]}" 2>/dev/null || true
  done
  chroot_mounts=()
}
# safe_rm_root DIR: remove a chroot directory only when nothing is mounted below it.
safe_rm_root() {
  local root=$1
  [ -d "$root" ] || return 0
  chroot_umount
  if findmnt -rn -o TARGET | grep -q "^$(realpath "$root")/"; then
    echo "refusing to remove $root: something is still mounted in it" >&2
    return 1
  fi
  rm -rf --one-file-system "$root"
}

# ensure_binfmt ARCH: run ARCH binaries transparently (binfmt_misc with Debian's
# qemu-user-static entry, flag F), so that a debootstrap root of ARCH works under chroot.
# Returns 1 where the kernel interface cannot be had.
ensure_binfmt() {
  local cpu
  cpu=$(dpkg-architecture -a "$1" -qDEB_HOST_GNU_CPU 2>/dev/null) || return 1
  [ -e "/proc/sys/fs/binfmt_misc/qemu-$cpu" ] && return 0
  [ -e /proc/sys/fs/binfmt_misc/register ] ||
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || return 1
  [ -f "/usr/lib/binfmt.d/qemu-$cpu.conf" ] || return 1
  cat "/usr/lib/binfmt.d/qemu-$cpu.conf" >/proc/sys/fs/binfmt_misc/register 2>/dev/null
  [ -e "/proc/sys/fs/binfmt_misc/qemu-$cpu" ]
}

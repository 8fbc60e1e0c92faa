#!/usr/bin/env bash
# Shared by the README's two commands (cmake/dev-run.sh, tests/run.sh): install what a fresh
# Debian 12 machine lacks, fetch the pinned sources, configure and build one build directory.
# Source it; it defines functions and changes nothing by itself.

COAP_EDGE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian packages the build and the tests use (DESIGN.md "Dependencies").
COAP_EDGE_PACKAGES=(
  build-essential cmake pkg-config patch bzip2 xz-utils ca-certificates
  clang libclang-rt-14-dev
  libsqlite3-dev libsystemd-dev libtomlplusplus-dev nlohmann-json3-dev libfmt-dev
  libavahi-client-dev
  libgtest-dev libgmock-dev
  libcoap3-bin openssl python3-prometheus-client
  avahi-daemon avahi-utils dbus-daemon dbus iproute2 iputils-ping util-linux python3
)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install_packages() {
  local missing=()
  for p in "${COAP_EDGE_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "bootstrap: all required Debian packages are installed"
    return 0
  fi
  echo "bootstrap: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

fetch_sources() {
  bash "$COAP_EDGE_ROOT/cmake/fetch-sources.sh"
}

# build_dir DIR [cmake args...]: configure (once) and build everything in DIR with -j2.
configure_dir() {
  local dir=$1; shift
  mkdir -p "$dir"
  cmake -S "$COAP_EDGE_ROOT" -B "$dir" "$@" >"$dir/configure.log" 2>&1 ||
    { cat "$dir/configure.log" >&2; return 1; }
  grep -E '(libcoap|mbedtls)-patches:' "$dir/configure.log" || true
}

build_dir() {
  configure_dir "$@" || return 1
  cmake --build "$1" --parallel 2
}

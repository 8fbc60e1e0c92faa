#!/usr/bin/env bash
# Package tests (tests/run.sh stages "package" and "package-arm64"; needs root, as CI has):
#
#   bash tests/packaging/run.sh amd64   build the .deb (unit tests run inside the build), then
#                                       lintian, contents, unit hardening + systemd-analyze
#                                       security, man pages vs --help, and the install /
#                                       upgrade / purge test in a debootstrap'ed Debian 12 root
#   bash tests/packaging/run.sh arm64   cross-build the arm64 .deb with its unit tests run under
#                                       qemu-user, the same checks on the .deb, the arm64 agent
#                                       under qemu answering the amd64 coap-client, and the
#                                       install test in an arm64 Debian 12 root (binfmt_misc)
#
# Work and packages go to out/pkgtest/<arch>/ (git-ignored); the debootstrap root is cached in
# ~/.cache/coap-edge/debootstrap/. COAP_EDGE_PKG_REUSE=1 tests the previous run's packages
# again instead of building; COAP_EDGE_PKG_CLEAN_BUILD=1 also builds the package in a clean
# Debian 12 root from its Build-Depends alone (slower; proves they are complete). Ends with "N passed, N failed" and exits non-zero on failure.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$PKG_TESTS_DIR/check-deb.sh"
. "$PKG_TESTS_DIR/install-test.sh"
. "$PKG_TESTS_DIR/arm64-test.sh"

[ "$(id -u)" = 0 ] || { echo "tests/packaging/run.sh: needs root (debootstrap, chroot, apt-get)" >&2; exit 1; }
trap '[ -n "${agent_pid:-}" ] && kill "$agent_pid" 2>/dev/null; shutdown_root; chroot_umount' EXIT

# --build-only: install what the tests need and build the packages, nothing else; tests/run.sh
# builds them this way in the background while earlier stages test, then runs this script with
# COAP_EDGE_PKG_REUSE=1 on them.
build_only=0
if [ "${1:-}" = --build-only ]; then build_only=1; shift; fi
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(amd64)
host_arch=$(dpkg --print-architecture)
ensure_packages lintian debootstrap systemd-container libcoap3-bin man-db bsdextrautils binutils iproute2 || exit 1
t_all=$(date +%s)

if [ "$build_only" = 1 ]; then
  for arch in "${archs[@]}"; do
    debs=$COAP_EDGE_ROOT/out/pkgtest/$arch/debs
    build_args=(--out "$debs")
    if [ "$arch" != "$host_arch" ]; then
      ensure_packages qemu-user-static || exit 1
      build_args+=(--cross-check)
    fi
    rm -rf "$debs"
    note "packaging/build-deb ${build_args[*]} $arch"
    # A failed build leaves no package, so the test run after it cannot take an old one.
    timed "package build ($arch)" bash "$COAP_EDGE_ROOT/packaging/build-deb" "${build_args[@]}" "$arch" ||
      { rm -rf "$debs"; exit 1; }
  done
  exit 0
fi

for arch in "${archs[@]}"; do
  work=$COAP_EDGE_ROOT/out/pkgtest/$arch
  mkdir -p "$work"
  debs=$work/debs
  # COAP_EDGE_PKG_REUSE=1: test the packages of the previous run again (iterating on the tests).
  [ "${COAP_EDGE_PKG_REUSE:-0}" = 1 ] && ls "$debs"/coap-edge-agent_*_"$arch".deb >/dev/null 2>&1 || rm -rf "$debs"
  build_args=(--out "$debs")
  runner=()
  if [ "$arch" != "$host_arch" ]; then
    qemu=qemu-$(dpkg-architecture -a "$arch" -qDEB_HOST_GNU_CPU 2>/dev/null)-static
    ensure_packages qemu-user-static || exit 1
    build_args+=(--cross-check)
    runner=("$qemu" -L /)
  fi
  echo "== package $arch"
  note "packaging/build-deb ${build_args[*]} $arch"
  if [ -d "$debs" ]; then
    note "reusing $(ls "$debs"/coap-edge-agent_*_"$arch".deb)"
  elif ! timed "package build ($arch)" bash "$COAP_EDGE_ROOT/packaging/build-deb" "${build_args[@]}" "$arch"; then
    fail "packaging/build-deb $arch"
    continue
  fi
  deb=$(ls "$debs"/coap-edge-agent_*_"$arch".deb)
  pass "built $(basename "$deb")"
  # The unit tests ran inside the package build (natively, or under qemu-user when cross).
  tests_line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$debs/work/$arch/build.log" | tail -n1)
  echo "    unit tests in the package build: ${tests_line:-none}"
  check "unit tests ran and passed in the $arch package build${runner:+ (under ${runner[0]})}" \
    grep -q '^100% tests passed' <<<"$tests_line"

  check_deb "$deb" "${runner[@]}"
  if [ "$arch" = "$host_arch" ]; then
    echo "== install test ($arch, debootstrap $PKG_SUITE)"
    timed "install test" test_install "$deb"
    if [ "${COAP_EDGE_PKG_CLEAN_BUILD:-0}" = 1 ]; then
      echo "== package build in a clean $PKG_SUITE root (Build-Depends complete?)"
      timed "clean-root build" test_clean_build "$(ls -d "$debs/work/$arch"/coap-edge-*/)" "$arch"
    fi
  else
    echo "== $arch agent under qemu-user"
    timed "qemu agent test" test_foreign_agent "$deb" "$qemu"
    # The Raspberry Pi case end to end: a Debian 12 arm64 root, its binaries run by qemu-user
    # through binfmt_misc (registered here if the machine allows it).
    if ensure_binfmt "$arch"; then
      echo "== install test ($arch root through binfmt_misc + qemu-user, debootstrap $PKG_SUITE)"
      timed "install test ($arch)" test_install "$deb"
    else
      echo "  (binfmt_misc is not available here: the $arch root install test is skipped)"
    fi
  fi
done

echo "  time total: $(($(date +%s) - t_all)) s"
summary

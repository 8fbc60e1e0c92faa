#!/usr/bin/env bash
# README command 2 (and CI): install what is missing, build once per configuration, and run the
# whole suite:
#   build/      g++, RelWithDebInfo: unit and integration tests
#   build-san/  clang with AddressSanitizer + UndefinedBehaviorSanitizer (libcoap and mbedTLS
#               instrumented too) and libFuzzer: unit, integration and short fuzz runs; a
#               release build (-DNDEBUG), as shipped
#   build-fuzz-debug/  the fuzz targets alone again in a Debug build (assertions on in libcoap,
#               mbedTLS and our code), ASan + UBSan, shorter runs
#   package     the Debian package (amd64): build with unit tests, lintian, systemd-analyze,
#               install/upgrade/purge in a debootstrap'ed Debian 12 root (tests/packaging/)
#   package-arm64  the arm64 package cross-built, its unit tests and agent under qemu-user
# Environment: COAP_EDGE_FUZZ_SECONDS (default 10 per target; the Debug build gets a third),
# COAP_EDGE_STAGES (default "main san fuzz-debug package package-arm64") to run a subset.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../cmake/bootstrap.sh"
cd "$COAP_EDGE_ROOT"

install_packages || exit 1
fetch_sources || exit 1

stages=${COAP_EDGE_STAGES:-main san fuzz-debug package package-arm64}
fuzz_seconds=${COAP_EDGE_FUZZ_SECONDS:-10}
passed=0 failed=0 status=0
summaries=$(mktemp)
trap 'rm -f "$summaries"' EXIT

run_ctest() { # dir label-regex
  local log
  log=$(mktemp)
  ctest --test-dir "$1" -L "$2" --output-on-failure --timeout 300 -j2 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  # "100% tests passed, 0 tests failed out of 42"
  local line
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n1)
  if [ -n "$line" ]; then
    local total fails
    total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
    fails=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")
    passed=$((passed + total - fails)); failed=$((failed + fails))
    echo "$1 [$2]: $line" >> "$summaries"
  else
    echo "$1 [$2]: ctest ran no test or did not finish" >> "$summaries"; failed=$((failed + 1))
  fi
  rm -f "$log"
  [ "$rc" -eq 0 ] || status=1
}

run_counted() { # name command...: a runner that ends with "N passed, N failed"
  local name=$1 log t0; shift
  log=$(mktemp)
  t0=$(date +%s)
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n1)
  if [ -n "$line" ]; then
    passed=$((passed + ${line%% *})); failed=$((failed + $(sed -E 's/.*, ([0-9]+) failed/\1/' <<<"$line")))
    echo "$name: $line ($(($(date +%s) - t0)) s)" >> "$summaries"
  else
    echo "$name: ran no test or did not finish" >> "$summaries"; failed=$((failed + 1))
  fi
  rm -f "$log"
  [ "$rc" -eq 0 ] || status=1
}

for stage in $stages; do
  case "$stage" in
    main)
      echo "== stage main: g++ build, unit and integration tests"
      build_dir build -DCMAKE_BUILD_TYPE=RelWithDebInfo || { status=1; failed=$((failed + 1)); continue; }
      run_ctest build 'unit|integration' ;;
    san)
      echo "== stage san: clang + ASan/UBSan + libFuzzer"
      build_dir build-san -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
        -DCOAP_EDGE_SANITIZE=address,undefined -DCOAP_EDGE_FUZZ=ON -DCOAP_EDGE_FUZZ_SECONDS="$fuzz_seconds" ||
        { status=1; failed=$((failed + 1)); continue; }
      export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
      export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
      run_ctest build-san 'unit|integration|fuzz' ;;
    fuzz-debug)
      echo "== stage fuzz-debug: the fuzz targets in a Debug build (assertions on), ASan/UBSan"
      configure_dir build-fuzz-debug -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
        -DCOAP_EDGE_SANITIZE=address,undefined -DCOAP_EDGE_FUZZ=ON -DCOAP_EDGE_BENCH=OFF \
        -DCOAP_EDGE_FUZZ_SECONDS="$(((fuzz_seconds + 2) / 3))" &&
        cmake --build build-fuzz-debug --parallel 2 --target fuzz-targets ||
        { status=1; failed=$((failed + 1)); continue; }
      export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
      export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
      run_ctest build-fuzz-debug 'fuzz' ;;
    package)
      echo "== stage package: Debian package (amd64), lintian, systemd-analyze, debootstrap install test"
      run_counted package bash tests/packaging/run.sh amd64 ;;
    package-arm64)
      echo "== stage package-arm64: cross-built arm64 package, unit tests and agent under qemu-user"
      run_counted package-arm64 bash tests/packaging/run.sh arm64 ;;
    *) echo "unknown stage '$stage'" >&2; status=1 ;;
  esac
done

echo
echo "== summary"
cat "$summaries"
echo "$passed passed, $failed failed"
exit $status

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
# Only the first stage's build runs in the foreground: the others are built in the background,
# one after the other at the lowest CPU priority, while the stages before them test.
# Environment: COAP_EDGE_FUZZ_SECONDS (default 10 per target; the Debug build gets a third),
# COAP_EDGE_STAGES (default "main san fuzz-debug package package-arm64") to run a subset.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../cmake/bootstrap.sh"
cd "$COAP_EDGE_ROOT"

stages=${COAP_EDGE_STAGES:-main san fuzz-debug package package-arm64}
fuzz_seconds=${COAP_EDGE_FUZZ_SECONDS:-10}

# build_stage STAGE: configure and build what STAGE tests (for the package stages: the .deb,
# with its unit tests run inside the package build).
build_stage() {
  case "$1" in
    main) build_dir build -DCMAKE_BUILD_TYPE=RelWithDebInfo ;;
    san)
      build_dir build-san -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
        -DCOAP_EDGE_SANITIZE=address,undefined -DCOAP_EDGE_FUZZ=ON -DCOAP_EDGE_FUZZ_SECONDS="$fuzz_seconds" ;;
    fuzz-debug)
      configure_dir build-fuzz-debug -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
        -DCOAP_EDGE_SANITIZE=address,undefined -DCOAP_EDGE_FUZZ=ON -DCOAP_EDGE_BENCH=OFF \
        -DCOAP_EDGE_FUZZ_SECONDS="$(((fuzz_seconds + 2) / 3))" &&
        cmake --build build-fuzz-debug --parallel 2 --target fuzz-targets ;;
    package) bash tests/packaging/run.sh --build-only amd64 ;;
    package-arm64) bash tests/packaging/run.sh --build-only arm64 ;;
    *) echo "unknown stage '$1'" >&2; return 2 ;;
  esac
}

# Internal: tests/run.sh --build-stages DIR STAGE... builds the stages one after the other,
# each one's output in DIR/STAGE.log and its exit status in DIR/STAGE.rc.
if [ "${1:-}" = --build-stages ]; then
  dir=$2; shift 2
  for stage in "$@"; do
    build_stage "$stage" >"$dir/$stage.log" 2>&1
    echo $? >"$dir/$stage.rc"
  done
  exit 0
fi

install_packages || exit 1
fetch_sources || exit 1

for stage in $stages; do
  case "$stage" in
    main|san|fuzz-debug|package|package-arm64) ;;
    *) echo "unknown stage '$stage' (known: main san fuzz-debug package package-arm64)" >&2; exit 2 ;;
  esac
done
read -r -a stage_list <<<"$stages"
passed=0 failed=0 status=0
summaries=$(mktemp)
prebuilt=$(mktemp -d)
builder=""
cleanup() {
  [ -n "$builder" ] && kill -- -"$builder" 2>/dev/null
  rm -rf "$prebuilt" "$summaries"
}
trap cleanup EXIT

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

sanitizer_env() {
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
}

# The tests mostly wait (peers, timeouts, network namespaces: the main stage's use about an
# eighth of the two cores), so the builds after the first run in the background while the
# stages before them test, at the lowest CPU priority so that the tests keep the CPU they ask
# for: about 9 of 40 minutes less than building and testing in turn. One build at a time, in
# stage order; the package builds' apt-get runs happen there, one after the other (the test
# stages install nothing).
start_builder() {
  [ ${#stage_list[@]} -gt 1 ] || return 0
  setsid nice -n 19 bash "$COAP_EDGE_ROOT/tests/run.sh" --build-stages "$prebuilt" "${stage_list[@]:1}" </dev/null &
  builder=$!
}

# built STAGE: build the first stage here, or wait for the background build of a later one;
# its output goes to the log at that point, and its status is returned.
built() {
  local stage=$1 rc
  if [ "$stage" = "${stage_list[0]}" ]; then
    build_stage "$stage"; rc=$?
    start_builder
    return $rc
  fi
  while [ ! -e "$prebuilt/$stage.rc" ] && kill -0 "$builder" 2>/dev/null; do sleep 2; done
  cat "$prebuilt/$stage.log" 2>/dev/null
  [ -e "$prebuilt/$stage.rc" ] || { echo "the background build of $stage ended without a status" >&2; return 1; }
  return "$(cat "$prebuilt/$stage.rc")"
}

for stage in "${stage_list[@]}"; do
  case "$stage" in
    main) echo "== stage main: g++ build, unit and integration tests" ;;
    san) echo "== stage san: clang + ASan/UBSan + libFuzzer" ;;
    fuzz-debug) echo "== stage fuzz-debug: the fuzz targets in a Debug build (assertions on), ASan/UBSan" ;;
    package) echo "== stage package: Debian package (amd64), lintian, systemd-analyze, debootstrap install test" ;;
    package-arm64) echo "== stage package-arm64: cross-built arm64 package, unit tests and agent under qemu-user" ;;
  esac
  t0=$(date +%s)
  if ! built "$stage"; then
    echo "$stage: the build failed" >>"$summaries"
    status=1; failed=$((failed + 1))
    continue
  fi
  echo "== $stage built ($(($(date +%s) - t0)) s in the foreground)"
  case "$stage" in
    main) run_ctest build 'unit|integration' ;;
    san) sanitizer_env; run_ctest build-san 'unit|integration|fuzz' ;;
    fuzz-debug) sanitizer_env; run_ctest build-fuzz-debug 'fuzz' ;;
    package) COAP_EDGE_PKG_REUSE=1 run_counted package bash tests/packaging/run.sh amd64 ;;
    package-arm64) COAP_EDGE_PKG_REUSE=1 run_counted package-arm64 bash tests/packaging/run.sh arm64 ;;
  esac
done

echo
echo "== summary"
cat "$summaries"
echo "$passed passed, $failed failed"
exit $status

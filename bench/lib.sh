# Shared by the bench/run-*.sh scripts (sourced, not run): options, binaries, the servers under
# test on loopback, cleanup. Every wait here is bounded.

BUILD_DIR=""
SESSIONS=""
WORKERS=2
OUTSTANDING=4
DURATION=5
JSON_OUT=""
HOLD=3
REPEAT=1
AUTH=psk
BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "bench: $*" >&2; exit 1; }

parse_common_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --build-dir) BUILD_DIR=$2; shift 2 ;;
      --sessions) SESSIONS=$2; shift 2 ;;
      --workers) WORKERS=$2; shift 2 ;;
      --outstanding) OUTSTANDING=$2; shift 2 ;;
      --duration) DURATION=$2; shift 2 ;;
      --hold) HOLD=$2; shift 2 ;;
      --repeat) REPEAT=$2; shift 2 ;;
      --x509) AUTH=x509; shift ;;
      --agent-receive-buffer) AGENT_RECEIVE_BUFFER=$2; shift 2 ;;
      --json-out) JSON_OUT=$2; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) die "unknown option $1 (see --help)" ;;
    esac
  done
  [[ "$REPEAT" =~ ^[1-9][0-9]?$ ]] || die "--repeat takes 1..99"
  [[ -z "${AGENT_RECEIVE_BUFFER:-}" || "$AGENT_RECEIVE_BUFFER" =~ ^[0-9]+$ ]] ||
    die "--agent-receive-buffer takes a number of bytes (0: the kernel's default, as the peer has)"
  [[ -n "$BUILD_DIR" ]] || BUILD_DIR="$BENCH_LIB_DIR/../build"
  BUILD_DIR=$(cd "$BUILD_DIR" && pwd) || die "no build directory $BUILD_DIR"
  AGENT="$BUILD_DIR/src/daemon/coap-edge-agent"
  CTL="$BUILD_DIR/src/ctl/coap-edge-ctl"
  LOADGEN="$BUILD_DIR/bench/loadgen/coap-edge-loadgen"
  PEER="$BUILD_DIR/bench/coap-server"
  for b in "$AGENT" "$CTL" "$LOADGEN" "$PEER"; do
    [[ -x "$b" ]] || die "$b is missing: cmake --build $BUILD_DIR --target coap-edge-agent coap-edge-ctl coap-edge-loadgen bench-coap-server"
  done
  command -v python3 >/dev/null || die "python3 is needed to read the JSON reports"
  command -v ss >/dev/null || die "ss (iproute2) is needed to see when a server listens"
  AUTH_ARGS=(--psk-identity "$PSK_IDENTITY" --psk-hex "$PSK_HEX")
  if [[ "$AUTH" == x509 ]]; then
    make_pki
    AUTH_ARGS=(--cert "$PKI/$PSK_IDENTITY.crt" --key "$PKI/$PSK_IDENTITY.key" --ca "$PKI/ca.crt"
               --server-name 127.0.0.1)
  fi
}

# --x509: one CA made with coap-edge-ctl; the gateway certificate (serverAuth, SAN 127.0.0.1)
# serves both servers, the client certificate's CN is the PSK identity (the agent's ACL matches it).
make_pki() {
  PKI="$WORK/pki"
  mkdir -p "$PKI" "$WORK/pki-state"
  printf '[agent]\nname = "gw-bench"\nstate_dir = "%s"\n[downstream]\nlisten = ["127.0.0.1:5684"]\n' \
    "$WORK/pki-state" >"$WORK/pki.toml"
  {
    "$CTL" --config "$WORK/pki.toml" ca init &&
      "$CTL" --config "$WORK/pki.toml" ca show >"$PKI/ca.crt" &&
      "$CTL" --config "$WORK/pki.toml" cert issue gw-bench --out "$PKI" --server --san 127.0.0.1 &&
      "$CTL" --config "$WORK/pki.toml" cert issue "$PSK_IDENTITY" --out "$PKI"
  } >"$WORK/pki.log" 2>&1 || die "making the test PKI with coap-edge-ctl failed: $(tail -3 "$WORK/pki.log")"
}

# Processes started here and still running, killed on exit whatever happens. A process that was
# waited for leaves the list at once, so that cleanup never signals a recycled PID.
PIDS=()
forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
WORK=$(mktemp -d /tmp/coap-edge-bench.XXXXXX)
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PSK_IDENTITY="bench-client"
PSK_HEX=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

# Two consecutive free UDP ports on 127.0.0.1 (the example server adds 1 for DTLS); prints the first.
free_port_pair() {
  python3 - <<'PY'
import socket
for _ in range(50):
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
    p = a.getsockname()[1]
    if p >= 65535: a.close(); continue
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        b.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError: pass
    finally: a.close(); b.close()
else:
    raise SystemExit("no free pair of UDP ports on 127.0.0.1")
PY
}

# wait_listening PID PORT: until something listens on 127.0.0.1:PORT (UDP), at most 10 s.
wait_listening() {
  local pid=$1 port=$2
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 1
    [[ -n "$(ss -Hlun "sport = :$port")" ]] && return 0
    sleep 0.1
  done
  return 1
}

# start_agent PORT MAX_SESSIONS: coap-edge-agent with PSK only, the bench identity imported.
# Limits and an ACL are configured (as in production) but never bind: the cost of checking them
# is part of what is measured. Optional, set by the caller: AGENT_ACL_ALLOW (the bench identity's
# allow list, TOML array items), AGENT_LIMITS_EXTRA (more [limits] keys), AGENT_EXTRA_TOML (more
# sections, appended), AGENT_EXTRA_KEYS ("identity,hex" lines to import too). Sets AGENT_DIR.
AGENT_ACL_ALLOW='"GET /.well-known/core", "GET /status"'
AGENT_LIMITS_EXTRA=""
AGENT_EXTRA_TOML=""
AGENT_EXTRA_KEYS=""
start_agent() {
  local port=$1 max_sessions=$2 dir
  dir=$(mktemp -d "$WORK/agent.XXXXXX")
  mkdir -p "$dir/state"
  cat >"$dir/agent.toml" <<TOML
[agent]
name = "gw-bench"
state_dir = "$dir/state"
log_level = "warning"
[downstream]
listen = ["127.0.0.1:$port"]
idle_timeout = "300s"
$(if [[ -n "${AGENT_RECEIVE_BUFFER:-}" ]]; then printf 'receive_buffer_bytes = %s\n' "$AGENT_RECEIVE_BUFFER"; fi)
$(if [[ "$AUTH" == x509 ]]; then
    printf 'certificate = "%s"\nprivate_key = "%s"\nca = "%s"\n' "$PKI/gw-bench.crt" "$PKI/gw-bench.key" "$PKI/ca.crt"
  fi)
[limits]
max_sessions = $max_sessions
max_handshakes = 100
per_identity = { rate = 1000000.0, burst = 1000000 }
$AGENT_LIMITS_EXTRA
[[acl]]
identity = "bench-*"
allow = [$AGENT_ACL_ALLOW]
$AGENT_EXTRA_TOML
TOML
  AGENT_DIR=$dir
  printf '%s,%s\n%s' "$PSK_IDENTITY" "$PSK_HEX" "$AGENT_EXTRA_KEYS" |
    "$CTL" --config "$dir/agent.toml" keys import - >"$dir/import.log" 2>&1 ||
    die "coap-edge-ctl keys import failed: $(cat "$dir/import.log")"
  "$AGENT" --config "$dir/agent.toml" >"$dir/agent.log" 2>&1 &
  AGENT_PID=$!
  PIDS+=("$AGENT_PID")
  wait_listening "$AGENT_PID" "$port" || die "coap-edge-agent did not listen on 127.0.0.1:$port: $(tail -5 "$dir/agent.log")"
}

# start_peer PORT [ARGS...]: libcoap's example coap-server on the same libcoap + mbedTLS, same PSK,
# plain CoAP on PORT and DTLS on PORT+1; ARGS go to it too (e.g. -P for its forward-proxy mode).
start_peer() {
  local port=$1
  shift
  local pki=()
  [[ "$AUTH" == x509 ]] && pki=(-c "$PKI/gw-bench.crt" -j "$PKI/gw-bench.key" -C "$PKI/ca.crt")
  "$PEER" -A 127.0.0.1 -p "$port" -k "0x$PSK_HEX" "${pki[@]}" "$@" >>"$WORK/peer.log" 2>&1 &
  PEER_PID=$!
  PIDS+=("$PEER_PID")
  wait_listening "$PEER_PID" "$((port + 1))" || die "coap-server did not listen on 127.0.0.1:$((port + 1)): $(tail -5 "$WORK/peer.log")"
}

stop_pid() {
  local pid=$1
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# CPU time (user + system) of PID so far, in clock ticks.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# wait_ready FILE PID STEPS: until the generator PID writes FILE (its handshakes are done) or
# exits, at most STEPS steps of 0.01 s; the generator bounds its own handshake phase.
wait_ready() {
  local _
  for _ in $(seq "$3"); do
    [[ -e "$1" ]] && return 0
    kill -0 "$2" 2>/dev/null || return 0
    sleep 0.01
  done
}

# loadgen SERVER_PID[,PID...] PORT OUT_JSON LABEL [extra loadgen options...]: runs the generator;
# the server's CPU time over the load phase (from the end of the handshakes to the generator's
# exit) goes to OUT_JSON.cpu as "ticks ticks_per_second", so that cost per request can be read
# even on a machine that other work keeps busy; that of the i-th further PID (a relay's node) to
# OUT_JSON.cpu.i (i = 2, 3, ...).
loadgen() {
  local servers=$1 port=$2 out=$3 label=$4 ready="$3.ready" gen t0=() t1 pids i
  shift 4
  IFS=, read -r -a pids <<<"$servers"
  "$LOADGEN" --host 127.0.0.1 --port "$port" --path /.well-known/core --label "$label" \
    "${AUTH_ARGS[@]}" --workers "$WORKERS" --ready-file "$ready" "$@" >"$out" &
  gen=$!
  PIDS+=("$gen")
  wait_ready "$ready" "$gen" 20000
  for i in "${!pids[@]}"; do t0[i]=$(cpu_ticks "${pids[i]}"); done
  local rc=0
  wait "$gen" || rc=$?
  forget_pid "$gen"
  [[ $rc -eq 0 ]] || die "load generator failed against $label (127.0.0.1:$port)"
  for i in "${!pids[@]}"; do
    t1=$(cpu_ticks "${pids[i]}")
    echo "$((t1 - t0[i])) $(getconf CLK_TCK)" >"$out.cpu$([[ $i -eq 0 ]] || echo ".$((i + 1))")"
  done
}

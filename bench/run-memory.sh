#!/usr/bin/env bash
# Memory per established DTLS-PSK session, side by side: resident memory (VmRSS) of
# coap-edge-agent and of libcoap's example coap-server (same libcoap + mbedTLS build) before and
# while N idle sessions are held open by the load generator. See bench/README.md.
set -euo pipefail

usage() {
  cat <<'TXT'
usage: bench/run-memory.sh [--build-dir DIR] [--sessions N] [--workers W] [--hold S] [--x509]
                           [--first-request] [--json-out FILE]
Defaults: build dir ./build, 1000 sessions, 2 worker processes, sessions held 3 s, DTLS-PSK
(--x509: ECDHE-ECDSA with client certificates from a CA made with coap-edge-ctl). Sessions are
measured right after their handshake; --first-request measures them after each has sent one
GET and had its answer (until a client's first record, a DTLS server keeps its last flight).
TXT
}

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
FIRST_REQUEST=()
args=()
for a in "$@"; do
  if [[ "$a" == --first-request ]]; then FIRST_REQUEST=(--first-request); else args+=("$a"); fi
done
parse_common_args "${args[@]}"
SESSIONS=${SESSIONS:-1000}

# measure NAME PID PORT: RSS before, then with the sessions established and idle.
measure() {
  local name=$1 pid=$2 port=$3 ready="$WORK/$1.ready" before after established gen
  sleep 0.5  # let the server finish starting (lazy allocations, first log lines)
  before=$(rss_kb "$pid")
  "$LOADGEN" --host 127.0.0.1 --port "$port" --label "$name" "${AUTH_ARGS[@]}" \
    --workers "$WORKERS" --sessions "$SESSIONS" --outstanding 0 --duration "$HOLD" "${FIRST_REQUEST[@]}" \
    --handshake-timeout 120 --ready-file "$ready" >"$WORK/$name.json" &
  gen=$!
  PIDS+=("$gen")
  for _ in $(seq 1300); do
    [[ -e "$ready" ]] && break
    kill -0 "$gen" 2>/dev/null || break
    sleep 0.1
  done
  if [[ ! -e "$ready" ]]; then
    wait "$gen" || true
    forget_pid "$gen"
    die "sessions to $name were not established"
  fi
  sleep 1  # sessions idle; nothing in flight
  after=$(rss_kb "$pid")
  local rc=0
  wait "$gen" || rc=$?
  forget_pid "$gen"
  [[ $rc -eq 0 ]] || die "load generator failed against $name"
  established=$(cat "$ready")
  # -1 without --first-request (the report has null there)
  answered=$(python3 -c 'import json, sys; v = json.load(open(sys.argv[1])).get("first_requests_answered"); print(-1 if v is None else v)' "$WORK/$name.json")
  echo "$name $before $after $established $answered" >>"$WORK/memory.txt"
}

port=$(free_port_pair)
start_agent "$port" $((SESSIONS + 100))
measure coap-edge "$AGENT_PID" "$port"
stop_pid "$AGENT_PID"

port=$(free_port_pair)
start_peer "$port"
measure libcoap-coap-server "$PEER_PID" "$((port + 1))"
stop_pid "$PEER_PID"

python3 - "$WORK/memory.txt" "${JSON_OUT:-}" "$AUTH" "${FIRST_REQUEST[*]:-}" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    name, before, after, established, answered = line.split()
    before, after, established, answered = int(before), int(after), int(established), int(answered)
    rows[name] = {"rss_before_kb": before, "rss_after_kb": after, "sessions_established": established,
                  "first_requests_answered": None if answered < 0 else answered,
                  "per_session_kb": (after - before) / established if established else None}
edge, peer = rows["coap-edge"], rows["libcoap-coap-server"]
ratio = (edge["per_session_kb"] / peer["per_session_kb"]
         if edge["per_session_kb"] is not None and peer["per_session_kb"] else None)
summary = {"auth": sys.argv[3], "after_first_request": sys.argv[4] == "--first-request", "coap_edge": edge, "peer": peer, "ratios_coap_edge_over_peer": {"per_session_kb": ratio}}
print(json.dumps(summary, indent=2))
print(f"\n{'':22}{'coap-edge':>14}{'coap-server':>14}{'ratio':>8}", file=sys.stderr)
for key, label in (("rss_before_kb", "RSS before (KB)"), ("rss_after_kb", "RSS with sessions (KB)"),
                   ("sessions_established", "sessions")):
    print(f"{label:22}{edge[key]:>14}{peer[key]:>14}", file=sys.stderr)
fmt = lambda v: "n/a" if v is None else f"{v:.2f}"
print(f"{'KB per session':22}{fmt(edge['per_session_kb']):>14}{fmt(peer['per_session_kb']):>14}{fmt(ratio):>8}",
      file=sys.stderr)
if len(sys.argv) > 2 and sys.argv[2]:
    with open(sys.argv[2], "w") as f:
        json.dump(summary, f, indent=2)
PY

#!/usr/bin/env bash
# Termination side by side: coap-edge-agent and libcoap's example coap-server (same libcoap 4.3.5
# and mbedTLS build, same PSK) under the same DTLS-PSK load, one after the other on this machine;
# prints both reports and the ratios coap-edge / peer. See bench/README.md.
set -euo pipefail

usage() {
  cat <<'TXT'
usage: bench/run-termination.sh [--build-dir DIR] [--sessions N] [--workers W] [--outstanding K]
                                [--duration S] [--json-out FILE]
Defaults: build dir ./build, 100 sessions, 2 worker processes, 4 outstanding GETs per session, 5 s.
TXT
}

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_common_args "$@"
SESSIONS=${SESSIONS:-100}

port=$(free_port_pair)
start_agent "$port" $((SESSIONS + 100))
loadgen "$port" "$WORK/coap-edge.json" coap-edge --sessions "$SESSIONS" --outstanding "$OUTSTANDING" --duration "$DURATION"
stop_pid "$AGENT_PID"

port=$(free_port_pair)
start_peer "$port"
loadgen "$((port + 1))" "$WORK/peer.json" libcoap-coap-server --sessions "$SESSIONS" --outstanding "$OUTSTANDING" --duration "$DURATION"
stop_pid "$PEER_PID"

python3 - "$WORK/coap-edge.json" "$WORK/peer.json" "${JSON_OUT:-}" <<'PY'
import json, sys
edge, peer = (json.load(open(p)) for p in sys.argv[1:3])
def ratio(a, b):
    return a / b if b else None
summary = {
    "coap_edge": edge,
    "peer": peer,
    "ratios_coap_edge_over_peer": {
        "requests_per_second": ratio(edge["requests_per_second"], peer["requests_per_second"]),
        "p99_latency": ratio(edge["latency_us"]["p99"], peer["latency_us"]["p99"]),
        "handshakes_per_second": ratio(edge["handshakes_per_second"], peer["handshakes_per_second"]),
    },
}
print(json.dumps(summary, indent=2))
r = summary["ratios_coap_edge_over_peer"]
fmt = lambda v: "n/a" if v is None else f"{v:.2f}"
print(f"\n{'':22}{'coap-edge':>14}{'coap-server':>14}{'ratio':>8}", file=sys.stderr)
print(f"{'requests/s':22}{edge['requests_per_second']:>14.0f}{peer['requests_per_second']:>14.0f}{fmt(r['requests_per_second']):>8}", file=sys.stderr)
print(f"{'p99 latency (us)':22}{edge['latency_us']['p99']:>14}{peer['latency_us']['p99']:>14}{fmt(r['p99_latency']):>8}", file=sys.stderr)
print(f"{'handshakes/s':22}{edge['handshakes_per_second']:>14.0f}{peer['handshakes_per_second']:>14.0f}{fmt(r['handshakes_per_second']):>8}", file=sys.stderr)
print(f"{'errors':22}{edge['errors']['total']:>14}{peer['errors']['total']:>14}", file=sys.stderr)
if len(sys.argv) > 3 and sys.argv[3]:
    with open(sys.argv[3], "w") as f:
        json.dump(summary, f, indent=2)
PY

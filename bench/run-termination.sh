#!/usr/bin/env bash
# Termination side by side: coap-edge-agent and libcoap's example coap-server (same libcoap 4.3.5
# and mbedTLS build, same PSK) under the same DTLS-PSK load, one after the other on this machine;
# prints both reports and the ratios coap-edge / peer. See bench/README.md.
set -euo pipefail

usage() {
  cat <<'TXT'
usage: bench/run-termination.sh [--build-dir DIR] [--sessions N] [--workers W] [--outstanding K]
                                [--duration S] [--repeat R] [--x509] [--json-out FILE]
                                [--agent-receive-buffer BYTES]
Defaults: build dir ./build, 100 sessions, 2 worker processes, 4 outstanding GETs per session, 5 s,
1 round (each round runs coap-edge, then the peer; the summary is the median over the rounds),
DTLS-PSK (--x509: ECDHE-ECDSA with client certificates from a CA made with coap-edge-ctl).
--agent-receive-buffer 0 gives coap-edge the kernel's default receive buffer, as the peer has
(its own default is 1 MiB, [downstream] receive_buffer_bytes).
TXT
}

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_common_args "$@"
SESSIONS=${SESSIONS:-100}

# Rounds alternate coap-edge and the peer, each on a fresh server, so that drift in the load from
# other work on the machine hits both alike; the summary takes the median of each figure.
for round in $(seq "$REPEAT"); do
  port=$(free_port_pair)
  start_agent "$port" $((SESSIONS + 100))
  loadgen "$AGENT_PID" "$port" "$WORK/coap-edge.$round.json" coap-edge --sessions "$SESSIONS" \
    --outstanding "$OUTSTANDING" --duration "$DURATION"
  stop_pid "$AGENT_PID"

  port=$(free_port_pair)
  start_peer "$port"
  loadgen "$PEER_PID" "$((port + 1))" "$WORK/peer.$round.json" libcoap-coap-server --sessions "$SESSIONS" \
    --outstanding "$OUTSTANDING" --duration "$DURATION"
  stop_pid "$PEER_PID"
done

python3 - "$WORK" "$REPEAT" "${JSON_OUT:-}" <<'PY'
import json, statistics, sys
work, rounds, json_out = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def load(name, i):
    path = f"{work}/{name}.{i}.json"
    report = json.load(open(path))
    ticks, hz = (int(x) for x in open(path + ".cpu").read().split())
    # CPU per request of the server itself: steadier than requests/s when other work competes.
    report["server_cpu_seconds"] = ticks / hz
    report["server_cpu_us_per_request"] = (ticks / hz * 1e6 / report["requests_completed"]
                                           if report["requests_completed"] else None)
    return report

edge = [load("coap-edge", i) for i in range(1, rounds + 1)]
peer = [load("peer", i) for i in range(1, rounds + 1)]
figures = {
    "requests_per_second": lambda r: r["requests_per_second"],
    "p99_latency_us": lambda r: r["latency_us"]["p99"],
    "handshakes_per_second": lambda r: r["handshakes_per_second"],
    "server_cpu_us_per_request": lambda r: r["server_cpu_us_per_request"],
}
def median(reports, get):
    values = [v for v in (get(r) for r in reports) if v is not None]
    return statistics.median(values) if values else None
def ratio(a, b):
    return a / b if a is not None and b else None
medians = {side: {k: median(reps, get) for k, get in figures.items()} for side, reps in (("coap_edge", edge), ("peer", peer))}
ratios = {k: ratio(medians["coap_edge"][k], medians["peer"][k]) for k in figures}
per_round = [{k: ratio(get(e), get(p)) for k, get in figures.items()} for e, p in zip(edge, peer)]
summary = {
    "auth": edge[0]["mode"],
    "rounds": rounds,
    "coap_edge": edge[-1] if rounds == 1 else edge,
    "peer": peer[-1] if rounds == 1 else peer,
    "medians": medians,
    "ratios_coap_edge_over_peer": ratios,
    "ratios_per_round": per_round,
}
print(json.dumps(summary, indent=2))
fmt = lambda v, spec=".2f": "n/a" if v is None else format(v, spec)
print(f"\n{'median of ' + str(rounds) + ' round(s)':26}{'coap-edge':>12}{'coap-server':>12}{'ratio':>8}", file=sys.stderr)
for key, label, spec in (("requests_per_second", "requests/s", ".0f"), ("p99_latency_us", "p99 latency (us)", ".0f"),
                         ("handshakes_per_second", "handshakes/s", ".0f"),
                         ("server_cpu_us_per_request", "server CPU us/request", ".1f")):
    print(f"{label:26}{fmt(medians['coap_edge'][key], spec):>12}{fmt(medians['peer'][key], spec):>12}{fmt(ratios[key]):>8}",
          file=sys.stderr)
gen = lambda reps: statistics.median(r["generator_cpu_seconds_per_second"] for r in reps)
print(f"{'generator CPU s/s':26}{gen(edge):>12.2f}{gen(peer):>12.2f}", file=sys.stderr)
errors = lambda reps: sum(r["errors"]["total"] for r in reps)
retrans = lambda reps: sum(r["retransmissions"] for r in reps)
print(f"{'errors (all rounds)':26}{errors(edge):>12}{errors(peer):>12}", file=sys.stderr)
print(f"{'retransmissions (all)':26}{retrans(edge):>12}{retrans(peer):>12}", file=sys.stderr)
if rounds > 1:
    print("requests/s ratio per round: " + " ".join(fmt(r["requests_per_second"]) for r in per_round), file=sys.stderr)
if json_out:
    with open(json_out, "w") as f:
        json.dump(summary, f, indent=2)
PY

#!/usr/bin/env bash
# Scaling with established sessions: throughput of a fixed set of active sessions while more and
# more idle sessions are established, coap-edge and libcoap's example coap-server (libcoap 4.3.5
# walks every session on each loop iteration, so idle sessions cost throughput). See README.md.
set -euo pipefail

usage() {
  cat <<'TXT'
usage: bench/run-scaling.sh [--build-dir DIR] [--levels "1000 10000"] [--active A] [--outstanding K]
                            [--duration S] [--workers W] [--x509] [--json-out FILE]
Defaults: levels "1000 10000" established sessions, 1000 of them active, 1 outstanding GET each, 10 s.
Issue 9 asks for levels "1000 10000 50000" with 2000 active: that needs ~1.5 GB of RAM for the
two servers plus the generator, one server at a time.
TXT
}

LEVELS="1000 10000"
ACTIVE=1000
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --levels) LEVELS=$2; shift 2 ;;
    --active) ACTIVE=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUTSTANDING=1
parse_common_args "${args[@]}"
[[ "$ACTIVE" =~ ^[1-9][0-9]*$ ]] || die "--active takes a positive number"

for level in $LEVELS; do
  [[ "$level" =~ ^[1-9][0-9]*$ && "$level" -le 100000 ]] || die "--levels takes numbers of sessions up to 100000"
  active=$((ACTIVE < level ? ACTIVE : level))
  port=$(free_port_pair)
  start_agent "$port" $((level + 100))
  loadgen "$AGENT_PID" "$port" "$WORK/coap-edge.$level.json" coap-edge --sessions "$level" --active "$active" \
    --outstanding "$OUTSTANDING" --duration "$DURATION" --handshake-timeout 300
  stop_pid "$AGENT_PID"

  port=$(free_port_pair)
  start_peer "$port"
  loadgen "$PEER_PID" "$((port + 1))" "$WORK/peer.$level.json" libcoap-coap-server --sessions "$level" \
    --active "$active" --outstanding "$OUTSTANDING" --duration "$DURATION" --handshake-timeout 300
  stop_pid "$PEER_PID"
done

python3 - "$WORK" "$LEVELS" "${JSON_OUT:-}" <<'PY'
import json, sys
work, levels, json_out = sys.argv[1], [int(x) for x in sys.argv[2].split()], sys.argv[3]
rows = {}
for level in levels:
    row = {}
    for side, name in (("coap_edge", "coap-edge"), ("peer", "peer")):
        path = f"{work}/{name}.{level}.json"
        report = json.load(open(path))
        ticks, hz = (int(x) for x in open(path + ".cpu").read().split())
        report["server_cpu_us_per_request"] = (ticks / hz * 1e6 / report["requests_completed"]
                                               if report["requests_completed"] else None)
        row[side] = report
    rows[level] = row
def ratio(a, b):
    return a / b if a is not None and b else None
first, last = levels[0], levels[-1]
summary = {
    "levels": rows,
    # Throughput at the largest level relative to the smallest, per server (issue 9: >= 0.8).
    "throughput_at_max_over_min": {
        side: ratio(rows[last][side]["requests_per_second"], rows[first][side]["requests_per_second"])
        for side in ("coap_edge", "peer")},
}
print(json.dumps(summary, indent=2))
fmt = lambda v, spec=".2f": "n/a" if v is None else format(v, spec)
print(f"\n{'established':>12}{'active':>8}{'edge req/s':>12}{'peer req/s':>12}{'ratio':>7}"
      f"{'edge us/req':>13}{'peer us/req':>13}", file=sys.stderr)
for level in levels:
    e, p = rows[level]["coap_edge"], rows[level]["peer"]
    print(f"{level:>12}{e['active_sessions']:>8}{e['requests_per_second']:>12.0f}{p['requests_per_second']:>12.0f}"
          f"{fmt(ratio(e['requests_per_second'], p['requests_per_second'])):>7}"
          f"{fmt(e['server_cpu_us_per_request'], '.1f'):>13}{fmt(p['server_cpu_us_per_request'], '.1f'):>13}",
          file=sys.stderr)
t = summary["throughput_at_max_over_min"]
print(f"requests/s at {last} over at {first} sessions: coap-edge {fmt(t['coap_edge'])}, coap-server {fmt(t['peer'])}",
      file=sys.stderr)
if json_out:
    with open(json_out, "w") as f:
        json.dump(summary, f, indent=2)
PY

#!/usr/bin/env bash
# Relay side by side (issue 9): the same DTLS-PSK load (N sessions, K outstanding GETs, T seconds)
#   coap-edge      client -> coaps://agent/nodes/bench-node/time -> the node over plain CoAP
#   libcoap proxy  client -> libcoap's example coap-server -P (forward proxy, same libcoap + mbedTLS
#                  build), Proxy-Uri coap://127.0.0.1:NODEPORT/time -> the same node
#   direct         client -> coaps://node/time (the node's own DTLS endpoint: what relaying costs)
# The node is libcoap's example coap-server too (plain CoAP on NODEPORT, DTLS on NODEPORT+1), fresh
# for every measurement; its /time answers 15 bytes with Max-Age 1. coap-edge learns of it by an
# RD registration (POST /rd?ep=bench-node&base=coap://127.0.0.1:NODEPORT over DTLS-PSK, sent with
# Debian's coap-client). Variants (--variants):
#   uncached  every request has its own query (loadgen --unique-query), so neither relay can answer
#             from a cache or by coalescing identical requests: every request reaches the node
#   cached    every request is the same GET /time: coap-edge answers from its cache (one node
#             exchange per Max-Age) and coalesces; libcoap's proxy forwards every request
# coap-edge's [limits] per_identity and per_node and [relay] max_in_flight are raised so that they
# never bind (their checks are still made). See bench/README.md.
set -euo pipefail

usage() {
  cat <<'TXT'
usage: bench/run-relay.sh [--build-dir DIR] [--sessions N] [--workers W] [--outstanding K]
                          [--duration S] [--repeat R] [--variants "uncached cached"] [--json-out FILE]
                          [--agent-receive-buffer BYTES]
Defaults: build dir ./build, 100 sessions, 2 worker processes, 4 outstanding GETs per session, 5 s,
1 round (each round runs, per variant, coap-edge, libcoap's proxy and the node directly; the
summary is the median over the rounds), both variants. DTLS-PSK only.
Needs coap-client-openssl or coap-client-gnutls (Debian libcoap3-bin) for the node's registration.
--agent-receive-buffer 0 gives coap-edge the kernel's default receive buffer, as the peers have
(its own default is 1 MiB, [downstream] receive_buffer_bytes).
TXT
}

VARIANTS="uncached cached"
rest=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --variants) VARIANTS=${2:-}; shift 2 ;;
    *) rest+=("$1"); shift ;;
  esac
done

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_common_args "${rest[@]+"${rest[@]}"}"
SESSIONS=${SESSIONS:-100}
[[ "$AUTH" == psk ]] || die "run-relay.sh measures DTLS-PSK only (no --x509)"
for v in $VARIANTS; do
  [[ "$v" == uncached || "$v" == cached ]] || die "--variants takes uncached and/or cached, not '$v'"
done
[[ -n "${VARIANTS// /}" ]] || die "--variants is empty"

COAP_CLIENT=""
for c in coap-client-openssl coap-client-gnutls; do
  if command -v "$c" >/dev/null; then COAP_CLIENT=$c; break; fi
done
[[ -n "$COAP_CLIENT" ]] || die "coap-client-openssl or coap-client-gnutls is needed to register the node (apt-get install libcoap3-bin)"

# The node's own identity for its RD registration. Debian's coap-client takes the key as text, so
# the key is 16 random hex characters and the keystore gets the hex of those characters.
NODE_ID="bench-node"
NODE_KEY=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
NODE_KEY_HEX=$(printf '%s' "$NODE_KEY" | od -An -tx1 | tr -d ' \n')
RESOURCE=/time

INFLIGHT=$((SESSIONS * OUTSTANDING + 100))
((INFLIGHT <= 100000)) || INFLIGHT=100000
# Read by start_agent in lib.sh:
# shellcheck disable=SC2034
AGENT_ACL_ALLOW='"GET /.well-known/core", "GET /status", "GET /nodes/**"'
AGENT_LIMITS_EXTRA='per_node = { rate = 1000000.0, burst = 1000000 }'
AGENT_EXTRA_TOML="[relay]
timeout = \"10s\"
max_in_flight = $INFLIGHT"
AGENT_EXTRA_KEYS="$NODE_ID,$NODE_KEY_HEX
"

# start_node PORT: the node, plain CoAP on PORT (what both relays use), DTLS on PORT+1 (direct).
start_node() {
  start_peer "$1"
  NODE_PID=$PEER_PID
  wait_listening "$NODE_PID" "$1" || die "the node did not listen on 127.0.0.1:$1"
}

# register_node AGENT_PORT NODE_PORT: the node's RD registration at the agent, with base= the
# node's plain CoAP address; then the agent's registry must hold it (coap-edge-ctl status).
register_node() {
  local agent_port=$1 node_port=$2
  timeout 30 "$COAP_CLIENT" -B 10 -u "$NODE_ID" -k "$NODE_KEY" -m post -t 40 -e "<$RESOURCE>;ct=0" \
    "coaps://127.0.0.1:$agent_port/rd?ep=$NODE_ID&base=coap://127.0.0.1:$node_port" >"$WORK/register.log" 2>&1 ||
    die "registering the node with $COAP_CLIENT failed: $(tail -3 "$WORK/register.log")"
  for _ in $(seq 50); do
    if "$CTL" --config "$AGENT_DIR/agent.toml" status --json 2>/dev/null |
      python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["nodes"]["by_source"]["rd"] >= 1 else 1)'; then
      return 0
    fi
    sleep 0.1
  done
  die "the agent did not list the node after its registration: $(tail -3 "$WORK/register.log")"
}

relay_counters() {
  "$CTL" --config "$AGENT_DIR/agent.toml" status --json >"$1" 2>/dev/null || echo '{}' >"$1"
}

load_args() {  # load_args VARIANT: the generator's options common to the three targets
  LOAD_ARGS=(--sessions "$SESSIONS" --outstanding "$OUTSTANDING" --duration "$DURATION")
  [[ "$1" == uncached ]] && LOAD_ARGS+=(--unique-query)
  return 0
}

for round in $(seq "$REPEAT"); do
  for variant in $VARIANTS; do
    load_args "$variant"
    # 1. coap-edge relaying to the node.
    node_port=$(free_port_pair)
    start_node "$node_port"
    port=$(free_port_pair)
    start_agent "$port" $((SESSIONS + 100))
    register_node "$port" "$node_port"
    loadgen "$AGENT_PID,$NODE_PID" "$port" "$WORK/$variant.coap-edge.$round.json" "coap-edge relay ($variant)" \
      --path "/nodes/$NODE_ID$RESOURCE" "${LOAD_ARGS[@]}"
    relay_counters "$WORK/$variant.coap-edge.$round.status.json"
    stop_pid "$AGENT_PID"
    stop_pid "$NODE_PID"

    # 2. libcoap's example coap-server as a forward proxy (-P ",NAME": no next hop, so it connects
    # to the Proxy-Uri's host itself; NAME is a host name it would serve as the final endpoint).
    node_port=$(free_port_pair)
    start_node "$node_port"
    port=$(free_port_pair)
    start_peer "$port" -P ",bench-proxy"
    proxy_pid=$PEER_PID
    loadgen "$proxy_pid,$NODE_PID" "$((port + 1))" "$WORK/$variant.proxy.$round.json" "libcoap coap-server -P ($variant)" \
      --proxy-uri "coap://127.0.0.1:$node_port$RESOURCE" "${LOAD_ARGS[@]}"
    stop_pid "$proxy_pid"
    stop_pid "$NODE_PID"

    # 3. The node directly, over its own DTLS endpoint.
    node_port=$(free_port_pair)
    start_node "$node_port"
    loadgen "$NODE_PID" "$((node_port + 1))" "$WORK/$variant.direct.$round.json" "node direct ($variant)" \
      --path "$RESOURCE" "${LOAD_ARGS[@]}"
    stop_pid "$NODE_PID"
  done
done

python3 - "$WORK" "$REPEAT" "$VARIANTS" "${JSON_OUT:-}" <<'PY'
import json, os, statistics, sys
work, rounds, variants, json_out = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4]

def cpu(path):
    if not os.path.exists(path):
        return None
    ticks, hz = (int(x) for x in open(path).read().split())
    return ticks / hz

def load(variant, side, i):
    base = f"{work}/{variant}.{side}.{i}.json"
    report = json.load(open(base))
    done = report["requests_completed"]
    # The process the client talks to (relay, or the node when direct) and, behind a relay, the node.
    report["server_cpu_seconds"] = cpu(base + ".cpu")
    report["server_cpu_us_per_request"] = report["server_cpu_seconds"] * 1e6 / done if done else None
    node = cpu(base + ".cpu.2") if side != "direct" else report["server_cpu_seconds"]
    report["node_cpu_seconds"] = node
    report["node_cpu_us_per_request"] = node * 1e6 / done if done and node is not None else None
    status = base[:-len(".json")] + ".status.json"
    if os.path.exists(status):
        relay = json.load(open(status)).get("relay", {})
        report["coap_edge_relay"] = relay
        forwarded = relay.get("forwarded")
        # Client requests per exchange with the node: 1.0 = every request reached the node.
        report["node_exchanges_per_request"] = forwarded / done if done and forwarded is not None else None
    return report

figures = {
    "requests_per_second": lambda r: r["requests_per_second"],
    "p50_latency_us": lambda r: r["latency_us"]["p50"],
    "p99_latency_us": lambda r: r["latency_us"]["p99"],
    "server_cpu_us_per_request": lambda r: r["server_cpu_us_per_request"],
    "node_cpu_us_per_request": lambda r: r["node_cpu_us_per_request"],
    # Empty ACK first, then the response as a separate CON that the client acknowledges.
    "separate_response_share": lambda r: (r["separate_responses"] / r["requests_completed"]
                                          if r["requests_completed"] else None),
}
sides = (("coap_edge", "coap-edge"), ("libcoap_proxy", "proxy"), ("direct", "direct"))
def median(reports, get):
    values = [v for v in (get(r) for r in reports) if v is not None]
    return statistics.median(values) if values else None
def ratio(a, b):
    return a / b if a is not None and b else None

summary = {"auth": "psk", "rounds": rounds, "node": "libcoap example coap-server, GET /time (Max-Age 1)",
           "variants": {}}
for variant in variants:
    reps = {key: [load(variant, side, i) for i in range(1, rounds + 1)] for key, side in sides}
    medians = {key: {k: median(reps[key], get) for k, get in figures.items()} for key, _ in sides}
    ratios = {
        "coap_edge_over_libcoap_proxy": {k: ratio(medians["coap_edge"][k], medians["libcoap_proxy"][k]) for k in figures},
        "coap_edge_over_direct": {k: ratio(medians["coap_edge"][k], medians["direct"][k]) for k in figures},
        "libcoap_proxy_over_direct": {k: ratio(medians["libcoap_proxy"][k], medians["direct"][k]) for k in figures},
    }
    per_round = [ratio(e["requests_per_second"], p["requests_per_second"])
                 for e, p in zip(reps["coap_edge"], reps["libcoap_proxy"])]
    summary["variants"][variant] = {
        **{key: (reps[key][-1] if rounds == 1 else reps[key]) for key, _ in sides},
        "medians": medians,
        "ratios": ratios,
        "requests_per_second_ratio_coap_edge_over_libcoap_proxy_per_round": per_round,
        "coap_edge_node_exchanges_per_request": median(reps["coap_edge"], lambda r: r.get("node_exchanges_per_request")),
    }
print(json.dumps(summary, indent=2))

fmt = lambda v, spec=".2f": "n/a" if v is None else format(v, spec)
err = sys.stderr
for variant in variants:
    v = summary["variants"][variant]
    m, r = v["medians"], v["ratios"]
    what = ("every request has its own query: no cache or coalescing, every request reaches the node"
            if variant == "uncached" else "the same GET every time: coap-edge's cache and coalescing answer most")
    print(f"\n[{variant}] {what}", file=err)
    print(f"{'median of ' + str(rounds) + ' round(s)':24}{'coap-edge':>11}{'libcoap -P':>11}{'direct':>10}"
          f"{'edge/-P':>9}{'edge/direct':>12}", file=err)
    for key, label, spec in (("requests_per_second", "requests/s", ".0f"), ("p50_latency_us", "p50 latency (us)", ".0f"),
                             ("p99_latency_us", "p99 latency (us)", ".0f"),
                             ("server_cpu_us_per_request", "relay CPU us/request", ".1f"),
                             ("node_cpu_us_per_request", "node CPU us/request", ".1f"),
                             ("separate_response_share", "separate responses", ".2f")):
        print(f"{label:24}{fmt(m['coap_edge'][key], spec):>11}{fmt(m['libcoap_proxy'][key], spec):>11}"
              f"{fmt(m['direct'][key], spec):>10}{fmt(r['coap_edge_over_libcoap_proxy'][key]):>9}"
              f"{fmt(r['coap_edge_over_direct'][key]):>12}", file=err)
    reps = {key: (v[key] if rounds > 1 else [v[key]]) for key, _ in sides}
    errors = {key: sum(x["errors"]["total"] for x in reps[key]) for key, _ in sides}
    retrans = {key: sum(x["retransmissions"] for x in reps[key]) for key, _ in sides}
    print(f"{'errors (all rounds)':24}{errors['coap_edge']:>11}{errors['libcoap_proxy']:>11}{errors['direct']:>10}", file=err)
    print(f"{'retransmissions (all)':24}{retrans['coap_edge']:>11}{retrans['libcoap_proxy']:>11}{retrans['direct']:>10}",
          file=err)
    print(f"coap-edge node exchanges per request: {fmt(v['coap_edge_node_exchanges_per_request'], '.3f')}", file=err)
    if rounds > 1:
        print("requests/s ratio coap-edge/libcoap -P per round: "
              + " ".join(fmt(x) for x in v["requests_per_second_ratio_coap_edge_over_libcoap_proxy_per_round"]), file=err)
if json_out:
    with open(json_out, "w") as f:
        json.dump(summary, f, indent=2)
# A side with no successful request has no figure to compare: the setup is broken (ACL, node
# registration, proxy), not slow. Say so and fail, after the reports above.
broken = [f"{variant}/{key}" for variant in variants for key, _ in sides
          if any(x["requests_completed"] == 0
                 for x in (summary["variants"][variant][key] if rounds > 1 else [summary["variants"][variant][key]]))]
if broken:
    print(f"bench: no successful request in {', '.join(broken)} (see the errors in the JSON report)", file=err)
    sys.exit(1)
PY

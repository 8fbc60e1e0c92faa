#!/usr/bin/env bash
# Handshakes side by side: coap-edge-agent and libcoap's example coap-server (same libcoap 4.3.5
# and Mbed TLS build) each take N new DTLS sessions, PSK or (--x509) ECDHE-ECDSA with client
# certificates; prints handshakes/s and the server's CPU per handshake for both, their ratios,
# and, for ECDHE-ECDSA, the crypto bound of this machine from Mbed TLS's own benchmark
# (programs/test/benchmark.c, built as build/bench/mbedtls-benchmark). See bench/README.md.
set -euo pipefail

usage() {
  cat <<'TXT'
usage: bench/run-handshakes.sh [--build-dir DIR] [--sessions N] [--workers W] [--repeat R] [--x509]
                               [--json-out FILE]
Defaults: build dir ./build, 1000 sessions (PSK) or 300 (--x509), 2 worker processes, 1 round
(each round: coap-edge, then the peer, each fresh; the summary is the median over the rounds).
With --x509 Mbed TLS's benchmark runs first (about 100 s: it times every curve it has).
TXT
}

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_common_args "$@"
if [[ "$AUTH" == x509 ]]; then SESSIONS=${SESSIONS:-300}; else SESSIONS=${SESSIONS:-1000}; fi
MBEDTLS_BENCHMARK="$BUILD_DIR/bench/mbedtls-benchmark"

# handshakes SERVER_PID PORT OUT_JSON LABEL: N sessions, then at once a 1 s load phase (the
# generator has no handshake-only mode); the server's CPU time from before the first ClientHello
# to the last session established goes to OUT_JSON.hs-cpu as "ticks ticks_per_second".
handshakes() {
  local pid=$1 port=$2 out=$3 label=$4 ready="$3.ready" gen t0 t1
  t0=$(cpu_ticks "$pid")
  "$LOADGEN" --host 127.0.0.1 --port "$port" --path /.well-known/core --label "$label" "${AUTH_ARGS[@]}" \
    --workers "$WORKERS" --sessions "$SESSIONS" --outstanding 1 --duration 1 --ready-file "$ready" >"$out" &
  gen=$!
  PIDS+=("$gen")
  wait_ready "$ready" "$gen" 60000
  t1=$(cpu_ticks "$pid")
  local rc=0
  wait "$gen" || rc=$?
  forget_pid "$gen"
  [[ $rc -eq 0 ]] || die "load generator failed against $label (127.0.0.1:$port)"
  echo "$((t1 - t0)) $(getconf CLK_TCK)" >"$out.hs-cpu"
}

if [[ "$AUTH" == x509 ]]; then
  [[ -x "$MBEDTLS_BENCHMARK" ]] || die "$MBEDTLS_BENCHMARK is missing: cmake --build $BUILD_DIR --target bench-mbedtls-benchmark"
  echo "bench: Mbed TLS's benchmark (ecdsa, ecdh; about 100 s)" >&2
  # It times by the wall clock; on a shared machine it gets less than a core. Its CPU time over
  # its wall time (single-threaded) says how much, and scales its rates back to one whole core.
  python3 - "$MBEDTLS_BENCHMARK" "$WORK/mbedtls-benchmark.txt" <<'PY' || die "mbedtls-benchmark failed"
import resource, subprocess, sys, time
t0 = time.monotonic()
out = subprocess.run([sys.argv[1], "ecdsa", "ecdh"], capture_output=True, text=True, check=True).stdout
wall = time.monotonic() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[2], "w").write(out + f"\ncore share: {(ru.ru_utime + ru.ru_stime) / wall:.4f}\n")
PY
fi

for round in $(seq "$REPEAT"); do
  port=$(free_port_pair)
  start_agent "$port" $((SESSIONS + 100))
  handshakes "$AGENT_PID" "$port" "$WORK/coap-edge.$round.json" coap-edge
  stop_pid "$AGENT_PID"

  port=$(free_port_pair)
  start_peer "$port"
  handshakes "$PEER_PID" "$((port + 1))" "$WORK/peer.$round.json" libcoap-coap-server
  stop_pid "$PEER_PID"
done

python3 - "$WORK" "$REPEAT" "$AUTH" "${JSON_OUT:-}" <<'PY'
import json, re, statistics, sys
work, rounds, auth, json_out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

def load(name, i):
    path = f"{work}/{name}.{i}.json"
    report = json.load(open(path))
    ticks, hz = (int(x) for x in open(path + ".hs-cpu").read().split())
    done = report["sessions_established"]
    return {"handshakes_per_second": report["handshakes_per_second"], "sessions_established": done,
            "handshake_failures": report["errors"]["handshake_failures"],
            "server_cpu_us_per_handshake": ticks / hz * 1e6 / done if done else None,
            "cipher_suite": report.get("cipher_suite")}

edge = [load("coap-edge", i) for i in range(1, rounds + 1)]
peer = [load("peer", i) for i in range(1, rounds + 1)]
keys = ("handshakes_per_second", "server_cpu_us_per_handshake")
def median(reps, k):
    values = [r[k] for r in reps if r[k] is not None]
    return statistics.median(values) if values else None
medians = {side: {k: median(reps, k) for k in keys} for side, reps in (("coap_edge", edge), ("peer", peer))}
ratio = lambda a, b: a / b if a is not None and b else None
summary = {"auth": auth, "rounds": rounds, "coap_edge": edge, "peer": peer, "medians": medians,
           "ratios_coap_edge_over_peer": {k: ratio(medians["coap_edge"][k], medians["peer"][k]) for k in keys}}

if auth == "x509":
    # What the server must compute per ECDHE-ECDSA handshake with a client certificate: one
    # ephemeral P-256 key pair and shared secret, one ECDSA signature (ServerKeyExchange), two
    # ECDSA verifications (the client certificate's signature by the CA, CertificateVerify).
    text = open(f"{work}/mbedtls-benchmark.txt").read()
    def rate(title, unit):
        m = re.search(rf"{re.escape(title)}\s*:\s*([0-9.]+)\s+{re.escape(unit)}/s", text)
        return float(m.group(1)) if m else None
    sign, verify = rate("ECDSA-secp256r1", "sign"), rate("ECDSA-secp256r1", "verify")
    ecdhe = rate("ECDHE-secp256r1", "ephemeral handshake")
    share = re.search(r"core share: ([0-9.]+)", text)
    if None in (sign, verify, ecdhe) or not share:
        raise SystemExit("bench: P-256 figures not found in mbedtls-benchmark's output")
    # Per second of CPU, not of wall clock (the server's cost below is CPU time too).
    core_share = min(1.0, float(share.group(1)))
    sign, verify, ecdhe = sign / core_share, verify / core_share, ecdhe / core_share
    crypto_us = 1e6 * (1 / ecdhe + 1 / sign + 2 / verify)
    summary["crypto_bound"] = {
        "mbedtls_benchmark_per_cpu_second": {"ecdsa_p256_sign": sign, "ecdsa_p256_verify": verify,
                                             "ecdhe_p256_ephemeral": ecdhe},
        "mbedtls_benchmark_core_share": core_share,
        "server_crypto_us_per_handshake": crypto_us,
        "handshakes_per_second_per_core": 1e6 / crypto_us,
        # Above 0.9 the server does little but the crypto; the rest is libcoap, Mbed TLS's record
        # and handshake layers, the kernel and (coap-edge) its own checks.
        "crypto_share_of_server_cpu": {side: (crypto_us / medians[side]["server_cpu_us_per_handshake"]
                                              if medians[side]["server_cpu_us_per_handshake"] else None)
                                       for side in ("coap_edge", "peer")},
    }

print(json.dumps(summary, indent=2))
fmt = lambda v, spec=".2f": "n/a" if v is None else format(v, spec)
print(f"\n{auth + ', median of ' + str(rounds) + ' round(s)':30}{'coap-edge':>12}{'coap-server':>12}{'ratio':>8}", file=sys.stderr)
r = summary["ratios_coap_edge_over_peer"]
print(f"{'handshakes/s':30}{fmt(medians['coap_edge']['handshakes_per_second'], '.0f'):>12}"
      f"{fmt(medians['peer']['handshakes_per_second'], '.0f'):>12}{fmt(r['handshakes_per_second']):>8}", file=sys.stderr)
print(f"{'server CPU us/handshake':30}{fmt(medians['coap_edge']['server_cpu_us_per_handshake'], '.0f'):>12}"
      f"{fmt(medians['peer']['server_cpu_us_per_handshake'], '.0f'):>12}{fmt(r['server_cpu_us_per_handshake']):>8}",
      file=sys.stderr)
fails = lambda reps: sum(x["handshake_failures"] for x in reps)
print(f"{'failures (all rounds)':30}{fails(edge):>12}{fails(peer):>12}", file=sys.stderr)
if auth == "x509":
    b = summary["crypto_bound"]
    print(f"crypto bound (Mbed TLS benchmark): {b['server_crypto_us_per_handshake']:.0f} us of server crypto per "
          f"handshake = {b['handshakes_per_second_per_core']:.0f} handshakes/s per core; crypto share of server CPU: "
          f"coap-edge {fmt(b['crypto_share_of_server_cpu']['coap_edge'])}, "
          f"coap-server {fmt(b['crypto_share_of_server_cpu']['peer'])}", file=sys.stderr)
if json_out:
    with open(json_out, "w") as f:
        json.dump(summary, f, indent=2)
PY

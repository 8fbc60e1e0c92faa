#!/usr/bin/env bash
# Development PKI for coap-edge, made with coap-edge-ctl (no openssl CA): the device CA of the
# agent configured by CONFIG (`ca init`, kept in its state_dir/ca), the gateway's own
# certificate for 127.0.0.1 / ::1 / localhost (`cert issue --server`) and one device certificate
# (CN=dev-node-1), all EC P-256, in PEM and DER. Made fresh on the machine that uses them; no
# private key is ever committed.
# usage: certs/make-dev-pki.sh CTL CONFIG OUT_DIR [GATEWAY_ID]
#   CTL         the coap-edge-ctl binary
#   CONFIG      the agent's configuration (its state_dir holds the CA)
#   OUT_DIR     where ca.crt, GATEWAY_ID.{crt,key} and dev-node-1.{crt,key} (+ .der twins) go
#   GATEWAY_ID  CN of the gateway's certificate (default gw-dev, the [agent] name in
#               config/agent.dev.toml)
# An existing PKI in OUT_DIR from the same CA is kept; one from another CA (e.g. the openssl
# recipe this script replaced) is replaced.
set -euo pipefail
usage="usage: make-dev-pki.sh CTL CONFIG OUT_DIR [GATEWAY_ID]"
ctl=${1:?$usage}
config=${2:?$usage}
out=${3:?$usage}
gw=${4:-gw-dev}
device=dev-node-1
run() { "$ctl" --config "$config" "$@"; }

umask 077
mkdir -p "$out" && chmod 700 "$out"
if ! run ca show >/dev/null 2>&1; then
  run ca init --days 365
fi
ca_pem=$(run ca show)
generated=("$out/ca.crt")
for id in "$gw" "$device"; do
  generated+=("$out/$id.crt" "$out/$id.key" "$out/$id.crt.der" "$out/$id.key.der")
done
complete=yes
for f in "${generated[@]}"; do [ -s "$f" ] || complete=no; done
if [ "$complete" = yes ] && [ "$(cat "$out/ca.crt")" = "$ca_pem" ]; then
  echo "make-dev-pki: keeping the existing PKI in $out"
  exit 0
fi
# Incomplete, or from another CA: make it again (these files are generated, never edited).
rm -f "${generated[@]}" "$out/gw.crt" "$out/gw.key"
printf '%s\n' "$ca_pem" > "$out/ca.crt"
run cert issue "$gw" --server --san 127.0.0.1 --san ::1 --san localhost --out "$out" --days 365
run cert issue "$device" --out "$out" --days 365
chmod 644 "$out/ca.crt" "$out/$gw.crt" "$out/$device.crt" "$out/$gw.crt.der" "$out/$device.crt.der"
echo "make-dev-pki: wrote the CA certificate, the gateway's ($gw) and a device's ($device) to $out"

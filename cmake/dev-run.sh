#!/usr/bin/env bash
# README command 1: install what is missing, build, provision a development PKI and PSK under
# ./dev (never committed), and run the agent in the foreground on loopback with
# config/agent.dev.toml. Ctrl-C stops it (SIGINT drains like SIGTERM).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$COAP_EDGE_ROOT"

install_packages
fetch_sources
build_dir build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOAP_EDGE_BUILD_TESTS=OFF

mkdir -p dev && chmod 700 dev
config=config/agent.dev.toml
ctl=build/src/ctl/coap-edge-ctl
agent=build/src/daemon/coap-edge-agent
# The CA lives in the agent's state directory (dev/state/ca); certificates go to dev/pki.
bash certs/make-dev-pki.sh "$ctl" "$config" dev/pki gw-dev

# A printable PSK: Debian 12's coap-client-* (libcoap 4.3.1) take -k as a string, not hex.
if [ ! -s dev/dev-node.psk ]; then
  (umask 077; head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24 > dev/dev-node.psk)
fi
psk=$(cat dev/dev-node.psk)
if ! "$ctl" --config "$config" keys list | grep -q '^dev-node '; then
  printf 'dev-node,%s\n' "$(printf '%s' "$psk" | od -An -tx1 | tr -d ' \n')" | "$ctl" --config "$config" keys import -
fi

"$agent" --config "$config" --check-config
cat <<MSG

coap-edge-agent is starting on coaps://127.0.0.1:5684 (Ctrl-C to stop). In another shell:

  coap-client-gnutls  -u dev-node -k '$psk' coaps://127.0.0.1:5684/.well-known/core
  coap-client-gnutls  -u dev-node -k '$psk' coaps://127.0.0.1:5684/status
  coap-client-openssl -c dev/pki/dev-node-1.crt -j dev/pki/dev-node-1.key -C dev/pki/ca.crt coaps://127.0.0.1:5684/status
  $ctl --config $config keys list

MSG
exec "$agent" --config "$config"

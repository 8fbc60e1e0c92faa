#!/usr/bin/env bash
# arm64 on this amd64 machine: the cross-built agent and ctl from the .deb run under qemu-user
# (qemu-aarch64-static -L /, the arm64 libraries coming from multiarch), and the arm64 agent
# answers a DTLS-PSK GET from the native amd64 coap-client over loopback. (The cross-built
# unit tests run under qemu inside the package build itself: build-deb --cross-check.)
# Sourced by run.sh.

test_foreign_agent() { # deb qemu
  local deb=$1 qemu=$2 x=$work/extracted
  local run=("$qemu" -L /)
  check "coap-edge-agent is an AArch64 ELF" bash -c "readelf -h '$x/usr/bin/coap-edge-agent' | grep -q 'Machine:.*AArch64'"
  local version
  version=$("${run[@]}" "$x/usr/bin/coap-edge-agent" --version 2>&1)
  echo "    $version"
  check "--version under qemu names libcoap 4.3.5 and Mbed TLS 3.6.7" \
    bash -c "grep -q 'libcoap 4.3.5' <<<'$version' && grep -q 'Mbed TLS 3.6.7' <<<'$version'"

  local dir=$work/qemu-agent
  rm -rf "$dir"; mkdir -p "$dir"
  port=$(free_udp_port)
  psk_id=arm64-node
  psk_key=arm64-test-secret-01
  printf '[agent]\nname = "gw-arm64"\nstate_dir = "state"\nlog_level = "info"\n[downstream]\nlisten = ["127.0.0.1:%s"]\n' \
    "$port" >"$dir/agent.toml"
  check "arm64 --check-config under qemu" bash -c "$qemu -L / '$x/usr/bin/coap-edge-agent' --config '$dir/agent.toml' --check-config >/dev/null"
  check "arm64 coap-edge-ctl keys import under qemu" \
    bash -c "printf '%s,%s\n' '$psk_id' '$(hex_of "$psk_key")' | $qemu -L / '$x/usr/bin/coap-edge-ctl' --config '$dir/agent.toml' keys import - >/dev/null"
  "${run[@]}" "$x/usr/bin/coap-edge-agent" --config "$dir/agent.toml" >"$dir/agent.log" 2>&1 &
  agent_pid=$!
  local out
  out=$(psk_get coap-client-gnutls)
  check "arm64 agent answers a DTLS-PSK GET from amd64 coap-client-gnutls" grep -q '</status>' <<<"$out" ||
    { echo "$out"; cat "$dir/agent.log"; }
  out=$(psk_get coap-client-openssl)
  check "arm64 agent answers a DTLS-PSK GET from amd64 coap-client-openssl" grep -q '</status>' <<<"$out"
  check "SIGTERM: the arm64 agent exits 0" stop_agent
}

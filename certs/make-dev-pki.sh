#!/usr/bin/env bash
# Development PKI for coap-edge: a CA, the gateway's certificate for 127.0.0.1/localhost and one
# device certificate (CN=dev-node-1), all EC P-256. Made fresh on the machine that uses them;
# no private key is ever committed. Until coap-edge-ctl issues certificates (ca init / cert
# issue), this recipe uses the openssl CLI.
# usage: certs/make-dev-pki.sh OUT_DIR   (existing files are kept)
set -euo pipefail
out=${1:?usage: make-dev-pki.sh OUT_DIR}
mkdir -p "$out" && chmod 700 "$out"
cd "$out"
umask 077
if [ -s ca.crt ] && [ -s gw.crt ] && [ -s dev-node-1.crt ]; then
  echo "make-dev-pki: keeping the existing PKI in $out"; exit 0
fi
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -subj "/CN=coap-edge development CA" -days 365 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt
sign() { # name cn extensions
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  printf '%b' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -sha256 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
sign gw gw-dev 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n'
sign dev-node-1 dev-node-1 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n'
chmod 644 ca.crt gw.crt dev-node-1.crt
echo "make-dev-pki: wrote CA, gateway and device certificates to $out"

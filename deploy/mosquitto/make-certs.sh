#!/bin/sh
# A small lab CA, the broker's certificate and optional client certificates (EC P-256).
#   ./make-certs.sh OUTDIR BROKER_HOST [CLIENT…]
#   SAN="DNS:broker.lab,IP:10.0.0.5" ./make-certs.sh /etc/mosquitto/certs broker.lab rig-01
# The CA is created once (ca.key stays in OUTDIR: keep it offline in production).
set -eu
out=${1:?usage: make-certs.sh OUTDIR BROKER_HOST [CLIENT...]}
host=${2:?usage: make-certs.sh OUTDIR BROKER_HOST [CLIENT...]}
shift 2
days=${DAYS:-825}
san=${SAN:-DNS:$host}
mkdir -p "$out"
cd "$out"
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [ ! -f ca.key ]; then
  key ca.key
  openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=heatcycler lab CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt
fi

sign() {  # name cn extensions
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
    -days "$days" -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

sign broker "$host" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=serverAuth
subjectAltName=$san"

for client in "$@"; do
  sign "$client" "$client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=clientAuth"
done
chmod 644 ca.crt broker.crt
echo "make-certs.sh: CA, broker ($san) and ${*:-no} client certificates in $out"

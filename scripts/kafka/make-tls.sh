#!/usr/bin/env bash
# bash scripts/kafka/make-tls.sh [DIR]   (DIR defaults to <repo>/.sluice/tls)
#
# Makes the TLS material of the local SECURED Kafka broker (src/services/secure-kafka.ts) with openssl
# and keytool, once: does nothing (and prints nothing) when DIR is complete and its certificates are
# valid for at least another day. Called by scripts/setup.sh and, when the material is missing, by
# ensureSecureKafka() itself (a fresh clone running one test file without the set-up).
#
# DIR gets (test material only: the keys are not protected beyond file mode 600):
#   ca.pem, ca.key                  a self-signed CA ("Sluice test CA"), RSA 2048, 10 years
#   broker.pem, broker.key          the broker's certificate (CN=localhost, SAN DNS:localhost,
#                                   IP:127.0.0.1, serverAuth + clientAuth) signed by the CA
#   broker.p12, broker.p12.password the broker's PKCS12 keystore (key + certificate + CA chain);
#                                   the store and key password are the same (file next to it)
#   truststore.p12, truststore.p12.password
#                                   PKCS12 truststore holding the CA (for Java clients: Kafka's tools)
#   client.pem, client.key          a client certificate (CN=sluice-client, clientAuth) signed by the
#                                   CA, with its unencrypted PKCS#8 key, for mutual TLS
#   VERSION                         written last: the layout version; its absence means "incomplete"
# One run at a time (flock on DIR.lock); the files are made in a temporary directory and moved into
# place at once, so a reader never sees half the material.
set -euo pipefail

LAYOUT_VERSION=1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${1:-$ROOT/.sluice/tls}"

complete() {
  [ "$(cat "$1/VERSION" 2>/dev/null)" = "$LAYOUT_VERSION" ] || return 1
  local f
  for f in ca.pem ca.key broker.pem broker.p12 broker.p12.password truststore.p12 truststore.p12.password client.pem client.key; do
    [ -s "$1/$f" ] || return 1
  done
  for f in ca.pem broker.pem client.pem; do
    openssl x509 -checkend 86400 -noout -in "$1/$f" >/dev/null 2>&1 || return 1
  done
}

complete "$DIR" && exit 0

PARENT="$(dirname "$DIR")"
mkdir -p "$PARENT"
if command -v flock >/dev/null 2>&1; then
  exec 8>"$DIR.lock"
  flock -w 120 8 || { echo "make-tls: $DIR.lock held for 2 min by another run" >&2; exit 1; }
  complete "$DIR" && exit 0 # the other run made it
fi

command -v openssl >/dev/null 2>&1 || { echo "make-tls: openssl is not installed (apt-get install openssl)" >&2; exit 1; }
command -v keytool >/dev/null 2>&1 || { echo "make-tls: keytool is not installed (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }

TMP="$(mktemp -d "$PARENT/.tls.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
umask 077
cd "$TMP"

DAYS=3650
LOG="$TMP/openssl.log"
run() { "$@" >>"$LOG" 2>&1 || { echo "make-tls: failed: $*" >&2; tail -n 20 "$LOG" >&2; exit 1; }; }

openssl rand -hex 16 >broker.p12.password
openssl rand -hex 16 >truststore.p12.password

# The CA.
run openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$DAYS" -keyout ca.key -out ca.pem \
  -subj "/O=Sluice/CN=Sluice test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash"

# sign NAME SUBJECT EXTENSIONS: NAME.key + NAME.pem signed by the CA.
sign() {
  printf '%s\n' "$3" >"$1.ext"
  run openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$1.key" -out "$1.csr" -subj "$2"
  run openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days "$DAYS" \
    -extfile "$1.ext" -out "$1.pem"
  rm -f "$1.csr" "$1.ext"
}

sign broker "/O=Sluice/CN=localhost" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
authorityKeyIdentifier=keyid"

sign client "/O=Sluice/CN=sluice-client" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
authorityKeyIdentifier=keyid"

# The broker's keystore (Java 17 reads OpenSSL 3's default PKCS12 encryption: AES-256-CBC, PBKDF2).
run openssl pkcs12 -export -name broker -inkey broker.key -in broker.pem -certfile ca.pem \
  -passout "file:broker.p12.password" -out broker.p12

# The truststore: keytool, because only it marks a certificate-only PKCS12 entry as trusted for Java.
run keytool -importcert -noprompt -alias sluice-ca -file ca.pem -storetype PKCS12 \
  -keystore truststore.p12 -storepass:file truststore.p12.password

rm -f ca.srl "$LOG"
echo "$LAYOUT_VERSION" >VERSION
chmod 600 ./*.key ./*.password ./*.p12
chmod 644 ./*.pem VERSION
chmod 755 "$TMP"

cd "$PARENT"
rm -rf "$DIR" # incomplete, expired or of another layout version
mv "$TMP" "$DIR"
trap - EXIT
echo "make-tls: made the test CA, broker keystore and client certificate in $DIR"

#!/usr/bin/env bash
# The four steps on a throw-away "demo" profile (run by `make demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
home=${CERTWIZ_HOME:-$PWD/certs}
rm -rf "$home/demo"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
step scripts/1_gen_ca.sh -p demo
step scripts/2_gen_server_cert.sh -p demo -n myserver.local -d 365 --san 127.0.0.1
step scripts/3_gen_client_cert.sh -p demo -n bot-01 -u
step scripts/3_gen_client_cert.sh -p demo -n bot-02 -u
step scripts/4_revoke_client.sh -p demo -n bot-01
step certwiz list -p demo
step openssl crl -in "$home/demo/crl.pem" -noout -text
printf '\nEverything is in %s/demo (CA: ca.crt, CRL: crl.pem, client bundles: private/*.p12)\n' "$home"

#!/usr/bin/env bash
# Call an mTLS-protected URL with a PEM certificate and key (certwiz issued/NAME.crt and
# private/NAME.key). Usage: examples/curl/pem.sh URL CLIENT.crt CLIENT.key CA.crt [curl options...]
# An encrypted key: curl asks for its pass phrase on the terminal.
set -euo pipefail
url=$1 cert=$2 key=$3 ca=$4
shift 4
exec curl -sS --cert "$cert" --key "$key" --cacert "$ca" "$@" "$url"

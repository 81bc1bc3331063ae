#!/usr/bin/env bash
# Call an mTLS-protected URL with a certwiz PKCS#12 bundle.
# Usage: P12_PASSWORD=... examples/curl/p12.sh URL BUNDLE.p12 CA.crt [curl options...]
# The password reaches curl through a config on stdin (-K -), never through argv,
# so `ps` cannot show it. For a bundle made with -u (no password) leave P12_PASSWORD unset.
set -euo pipefail
url=$1 p12=$2 ca=$3
shift 3
# curl config syntax: inside "...", backslash and double quote are escaped with a backslash.
esc() { local s=${1//\\/\\\\}; printf '%s' "${s//\"/\\\"}"; }
curl -sS -K - --cacert "$ca" "$@" "$url" <<EOF
cert-type = P12
cert = "$(esc "$p12"):$(esc "${P12_PASSWORD:-}")"
EOF

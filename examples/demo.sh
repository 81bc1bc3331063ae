#!/usr/bin/env bash
# The four steps on a throw-away "demo" profile, then NGINX enforcing them on localhost
# (run by `make demo`): a good client gets through, no certificate and a revoked one
# get 400. Everything started here is stopped again by pid, also on error (trap).
set -euo pipefail
CDPATH= cd -- "$(dirname -- "$0")/.." >/dev/null  # never a CDPATH entry: rm -rf follows
home=${CERTWIZ_HOME:-$PWD/certs}
run=$PWD/demo/run
rm -rf "$home/demo" "$run"
# Print a command as it can be pasted: words with a space or a special character quoted.
shown() {
    local word out=()
    for word in "$@"; do
        if [[ $word =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+=("$word"); else out+=("'${word//\'/\'\\\'\'}'"); fi
    done
    printf '%s' "${out[*]}"
}
step() { printf '\n\033[1m$ %s\033[0m\n' "$(shown "$@")"; "$@"; }
say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }

step scripts/1_gen_ca.sh -p demo
step scripts/2_gen_server_cert.sh -p demo -n myserver.local -d 365 --san 127.0.0.1
step scripts/3_gen_client_cert.sh -p demo -n bot-01 -u
step scripts/3_gen_client_cert.sh -p demo -n bot-02 -u

say "NGINX (configs rendered by: certwiz nginx render) in front of an echo backend"
trap 'python examples/local_nginx.py down "$run"' EXIT
port=$(python examples/local_nginx.py up "$run" demo myserver.local)
nginx_cmd=$(cat "$run/nginx.cmd")
url=https://myserver.local:$port/
ask() { step curl -sS --resolve "myserver.local:$port:127.0.0.1" --cacert "$home/demo/ca.crt" \
    -w 'HTTP %{http_code}\n' "$@" "$url"; }

say "bot-01 with its bundle: 200, the backend sees who it is"
ask --cert-type P12 --cert "$home/demo/private/bot-01.p12:"
say "no client certificate: 400, the backend never sees the request"
ask
step scripts/4_revoke_client.sh -p demo -n bot-01 --reload --nginx-cmd "$nginx_cmd"
sleep 1  # nginx swaps its workers in the background after the reload signal
say "bot-01 again, now revoked: 400"
ask --cert-type P12 --cert "$home/demo/private/bot-01.p12:"
say "bot-02 is unaffected: 200"
ask --cert-type P12 --cert "$home/demo/private/bot-02.p12:" -o /dev/null
step certwiz list -p demo
printf '\nEverything is in %s/demo; the NGINX configs in %s/conf\n' "$home" "$run"

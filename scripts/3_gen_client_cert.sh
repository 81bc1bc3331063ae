#!/usr/bin/env bash
# Step 3: a client certificate and PKCS#12 bundle. Usage: 3_gen_client_cert.sh -p PROFILE -n NAME [-d DAYS] [-u]
set -euo pipefail
source "$(dirname "$0")/_certwiz.sh"
exec "$certwiz" client issue "$@"
